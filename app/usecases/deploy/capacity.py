"""MAX_ACTIVE_PREVIEWS, exactly: slots are claimed atomically, first come first served.

A preview asked to deploy that holds no slot is in line (`waiting_since`). Its
deploy claims a slot inside one exclusive transaction: the count of holders
and of those ahead in line cannot change between reading and claiming, whatever
the number of workers. A slot is held until the preview is torn down.
"""

from __future__ import annotations

import logging
from datetime import datetime

import peewee

from app.db import exclusive
from app.domain.states import PreviewState
from app.models import Event, Preview
from app.settings import Settings
from app.usecases.deploy import usage
from app.usecases.jobs import enqueue_deploy
from app.usecases.ports import Queue

log = logging.getLogger(__name__)

LOCK_NAME = "preview-capacity"
START_WINDOW_SECONDS = 5


def claim_slot(settings: Settings, preview_id: int, now: datetime) -> int | None:
    """Take a slot for the preview. None when it holds one (now or already); else its
    position in line (1 = the next slot that frees is its), and it stays in line."""
    with exclusive(LOCK_NAME):
        preview = Preview.get_by_id(preview_id)
        if preview.holds_slot:
            return None
        limit = settings.max_active_previews
        since = preview.waiting_since or now
        if limit is not None:
            taken = _taken_or_promised(preview, since)
            if taken >= limit:
                if preview.waiting_since is None:
                    Preview.update(waiting_since=since).where(Preview.id == preview_id).execute()
                # How many slots must free up before it is its turn.
                return int(taken - limit + 1)
        # Every preview that holds cluster resources has an expiry.
        Preview.update(
            holds_slot=True,
            waiting_since=None,
            budget_held_since=None,
            expires_at=peewee.fn.COALESCE(Preview.expires_at, now + settings.preview_ttl),
        ).where(Preview.id == preview_id).execute()
        usage.start(preview, now)  # it spends from now on, in the same transaction
        if limit is not None:
            Event.record(preview, "slot", f"took one of {limit} slots")
        return None


def _taken_or_promised(preview: Preview, since: datetime) -> int:
    """The slots held, and those the previews in line before this one (waiting `since`) get first."""
    ahead = Preview.waiting().where(
        (Preview.id != preview.id)
        & ((Preview.waiting_since < since) | ((Preview.waiting_since == since) & (Preview.id < preview.id)))
    )
    return int(Preview.active().count() + ahead.count())


def slot_free(settings: Settings, preview: Preview, now: datetime) -> bool:
    """Whether claim_slot would give the preview a slot now: a read, not a claim."""
    limit = settings.max_active_previews
    return limit is None or preview.holds_slot or _taken_or_promised(preview, preview.waiting_since or now) < limit


def free_stale_slots(now: datetime, dry_run: bool = False) -> list[int]:
    """Slots held by deleted previews (a teardown by a worker of an older release, or one that
    died between its steps) are freed: the slot count is the rows', whatever wrote them."""
    stale = Preview.select(Preview.id).where((Preview.holds_slot == True) & (Preview.state == PreviewState.DELETED))  # noqa: E712
    found = [preview.id for preview in stale]
    if found and not dry_run:
        Preview.update(holds_slot=False, updated_at=now).where(
            Preview.id.in_(found) & (Preview.state == PreviewState.DELETED)
        ).execute()
        usage.stop(found, now)
    return found


def start_waiting(queue: Queue, settings: Settings, now: datetime, dry_run: bool = False) -> list[int]:
    """Queue the deploys of the previews first in line, as many as there are free slots.
    Each claims its slot itself when it runs."""
    limit = settings.max_active_previews
    if limit is None:
        return []  # nothing waits for a slot: each deploy takes one when it runs
    started = list(Preview.waiting().limit(max(0, limit - Preview.active().count())))
    if not dry_run:
        # One start per preview and commit at a time: passes and teardowns in between do not pile up
        # jobs. The finished job is forgotten at once: a start that found no slot free yet (it ran
        # just before a teardown released one) must not block the next start for its window.
        window = int(now.timestamp()) // START_WINDOW_SECONDS
        for preview in started:
            enqueue_deploy(queue, preview.id, preview.head_sha, f"slot-{window}", keep_result=False)
    return [p.id for p in started]
