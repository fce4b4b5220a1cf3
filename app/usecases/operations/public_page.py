"""What the public page of a preview (the commit status's link) reads: its view, found by its
unguessable public id, and its history (the page shows only the messages of PUBLIC_PHASES)."""

from __future__ import annotations

from app.models import Event, Preview
from app.usecases.operations.views import PreviewView, view


def find(public_id: str) -> PreviewView | None:
    preview = Preview.get_or_none(Preview.public_id == public_id)
    return view(preview) if preview is not None else None


# Events whose messages say what happened without naming cluster objects; of the others the
# page shows only the phase and the time.
PUBLIC_PHASES = frozenset({"queued", "approval", "slot", "resume", "ready", "teardown", "delivery"})


def events(preview_id: int, limit: int = 50) -> list[Event]:
    """The newest events, newest first."""
    return list(Event.select().where(Event.preview == preview_id).order_by(Event.id.desc()).limit(limit))
