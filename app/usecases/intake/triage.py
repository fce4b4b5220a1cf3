"""A received delivery planned against the database: the worker's first step with it.

Intake stored the signed body after deciding what needs no database (app/usecases/intake/
accept.py). Here, one delivery at a time across all workers, the delivery is verified again
with the repository's secret as it is now, planned with what the database knows (an open PR
for a pushed branch, a live preview to approve, the same work accepted before), and its
desired state is written: the outcome is recorded on the delivery.

One at a time, because the order of deliveries decides the desired state: two workers
planning a PR's two pushes at once could each find the other's not yet written. Planning is
a few statements, so a burst waits a little here, not on the cluster.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import peewee

from app.db import exclusive
from app.domain.gitea_events import CommentEvent, GiteaEvent, PayloadError, PullRequestEvent, PushEvent, parse_event
from app.domain.planning import APPROVE, DEPLOY, LABELS, TEARDOWN, Plan, ignore, plan
from app.domain.signature import signature_matches
from app.domain.states import DeliveryOutcome, PreviewState
from app.models import Preview, Repository, WebhookDelivery
from app.settings import Settings
from app.usecases.intake import repositories
from app.usecases.intake.desired_state import want_deploy, want_teardown
from app.usecases.ports import Services

log = logging.getLogger(__name__)

PIN_LABEL = "preview:keep"
PLANNING_LOCK = "gitea-previews:delivery-planning"


@dataclass
class Triaged:
    outcome: DeliveryOutcome
    reason: str
    wanted: Plan = field(default_factory=lambda: ignore(""))
    preview: Preview | None = None


def _open_pr_number(event: PushEvent) -> int | None:
    repository = Repository.get_or_none(Repository.full_name == event.repository.full_name)
    if repository is None or event.branch is None:
        return None
    preview = Preview.open_pr_for_branch(repository, event.branch)
    return preview.pr_number if preview else None


def _accepted_for(target_key: str) -> peewee.Expression:
    return (WebhookDelivery.target_key == target_key) & (WebhookDelivery.outcome == DeliveryOutcome.ACCEPTED)


def _is_duplicate(target_key: str, intent: str, work_key: str) -> bool:
    """The target's last accepted work is this same work: a Gitea "Redeliver" of it.

    Anything else is new work, even a commit seen before: a force-push back to an earlier
    commit (A, B, then A again) must deploy A. Only Gitea can tell that from a stale
    redelivery of A's push, so the worker asks it (and follows its head) before building.
    A PR closed, reopened and closed again at the same sha is new work each time too.
    """
    # One round trip: the last accepted delivery's id is a subquery.
    last = WebhookDelivery.select(peewee.fn.MAX(WebhookDelivery.id)).where(_accepted_for(target_key))
    return bool(
        WebhookDelivery.select()
        .where(
            (WebhookDelivery.id == last) & (WebhookDelivery.work_key == work_key) & (WebhookDelivery.intent == intent)
        )
        .exists()
    )


def _newer_planned(delivery_id: int, target_key: str) -> bool:
    """A delivery received after this one, for the same preview, was planned first: its desired
    state stands (this one's is older news)."""
    return bool(
        WebhookDelivery.select()
        .where(
            _accepted_for(target_key)
            & WebhookDelivery.intent.in_((DEPLOY, TEARDOWN))
            & (WebhookDelivery.id > delivery_id)
        )
        .exists()
    )


def _update_pin(target_key: str, pinned: bool) -> None:
    Preview.update(pinned=pinned).where((Preview.target_key == target_key) & (Preview.pinned != pinned)).execute()


def _live_preview(target_key: str | None) -> Preview | None:
    found: Preview | None = Preview.get_or_none(
        (Preview.target_key == target_key) & Preview.state.in_(PreviewState.ACTIVE)
    )
    return found


def _verified_event(services: Services, delivery: WebhookDelivery) -> GiteaEvent | Triaged:
    """The delivery's event, if the repository's secret today signed it; else why not. A
    repository it names by a new name is renamed here once Gitea confirms it (by Gitea's id);
    a GiteaError propagates: the job is retried, nothing planned on an unconfirmed name."""
    body = str(delivery.body or "")
    try:
        payload: Any = json.loads(body)
        claimed = payload["repository"]
        name, gitea_id = claimed["full_name"], claimed.get("id")
    except (ValueError, RecursionError, KeyError, TypeError, AttributeError):
        return Triaged(DeliveryOutcome.REFUSED, "its body is not a repository's event")
    repository = repositories.for_delivery(name, gitea_id if type(gitea_id) is int else None)
    secret = repositories.signing_secret(services.settings, repository)
    if secret is None or not signature_matches(secret, body.encode(), delivery.signature):
        return Triaged(DeliveryOutcome.REFUSED, "its signature does not match the repository's secret any more")
    if repository is not None and str(name).lower() != repository.full_name.lower():
        if not services.gitea.configured:
            return Triaged(DeliveryOutcome.REFUSED, f"it names {name!r}, a new name nobody can confirm (no GITEA_URL)")
        repositories.follow_gitea(services.gitea, repository)
        if repository.full_name.lower() != str(name).lower():
            return Triaged(DeliveryOutcome.REFUSED, f"it names {name!r}, which is not what Gitea calls this repository")
    try:
        event = parse_event(str(delivery.event_type), payload)
    except PayloadError as error:
        return Triaged(DeliveryOutcome.REFUSED, str(error))
    if event is None:
        return Triaged(DeliveryOutcome.IGNORED, f"event type {delivery.event_type!r} is not acted on")
    return event


def _plan(settings: Settings, delivery_id: int, event: GiteaEvent) -> Triaged:
    """What the delivery asks, given what the database knows; its desired state written."""
    open_pr = _open_pr_number(event) if isinstance(event, PushEvent) else None
    wanted = plan(event, settings, open_pr)
    if isinstance(event, PullRequestEvent) and not settings.gitea_url:
        # With Gitea the worker reads the real labels: a replayed payload's would be old.
        _update_pin(Preview.pr_key(event.repository.full_name, event.number), PIN_LABEL in event.labels)
    if wanted.intent == LABELS and not settings.gitea_url:
        return Triaged(DeliveryOutcome.IGNORED, "labels changed: the pin follows the payload (no GITEA_URL to ask)")
    if wanted.intent in (APPROVE, LABELS):
        # Checked with Gitea by the worker (the head, the approver's access, the labels) before it counts.
        preview = _live_preview(wanted.target_key)
        if preview is None:
            reason = f"{wanted.reason}, but there is no live preview it concerns"
            return Triaged(DeliveryOutcome.IGNORED, reason, wanted)
        return Triaged(DeliveryOutcome.ACCEPTED, wanted.reason, wanted, preview)
    if wanted.intent not in (DEPLOY, TEARDOWN) or not wanted.target_key or not wanted.work_key:
        return Triaged(DeliveryOutcome.IGNORED, wanted.reason, wanted)
    if _newer_planned(delivery_id, wanted.target_key):
        return Triaged(DeliveryOutcome.SUPERSEDED, "a newer delivery for this preview was planned first", wanted)
    if _is_duplicate(wanted.target_key, wanted.intent, wanted.work_key):
        return Triaged(DeliveryOutcome.DUPLICATE, "the same work was already accepted", wanted)
    if wanted.intent == DEPLOY:
        return Triaged(DeliveryOutcome.ACCEPTED, wanted.reason, wanted, want_deploy(event.repository, wanted))
    preview = want_teardown(wanted, ask_gitea_first=bool(settings.gitea_url))
    if preview is None:
        return Triaged(DeliveryOutcome.IGNORED, f"{wanted.reason}, but there is no live preview to tear down", wanted)
    return Triaged(DeliveryOutcome.ACCEPTED, wanted.reason, wanted, preview)


def _record(delivery: WebhookDelivery, found: Triaged, event: GiteaEvent | None) -> None:
    """The outcome on the delivery, its body dropped; with the final plan when it was planned
    (refused before planning, it keeps what intake read from the payload)."""
    planned: dict[str, Any] = {"outcome": found.outcome, "reason": found.reason, "body": None}
    if found.preview is not None:
        planned["preview"] = found.preview.id
    if event is not None:
        wanted = found.wanted
        planned |= {
            "target_key": wanted.target_key,
            "head_sha": wanted.head_sha,
            "intent": wanted.intent,
            "work_key": wanted.work_key,
            "actor": wanted.actor,
            "action": wanted.action or (event.action if isinstance(event, PullRequestEvent | CommentEvent) else None),
        }
    WebhookDelivery.update(**planned).where(WebhookDelivery.id == delivery.id).execute()


def triage(services: Services, delivery_id: int) -> WebhookDelivery | None:
    """Plan the delivery if it is still only received, and return it as planned (None: there
    is no such delivery). Safe to run again: a planned delivery is returned as it is."""
    delivery: WebhookDelivery | None = WebhookDelivery.get_or_none(WebhookDelivery.id == delivery_id)
    if delivery is None or delivery.outcome != DeliveryOutcome.RECEIVED:
        return delivery
    # Outside the lock, which on SQLite is the database's write lock: following a rename asks Gitea.
    checked = _verified_event(services, delivery)
    with exclusive(PLANNING_LOCK):
        delivery = WebhookDelivery.get_or_none(WebhookDelivery.id == delivery_id)
        if delivery is None or delivery.outcome != DeliveryOutcome.RECEIVED:
            return delivery  # planned meanwhile by another worker
        event = None if isinstance(checked, Triaged) else checked
        found = checked if isinstance(checked, Triaged) else _plan(services.settings, delivery.id, checked)
        _record(delivery, found, event)
    log.info(
        "delivery planned delivery_id=%s outcome=%s reason=%r target=%r",
        delivery_id,
        found.outcome,
        found.reason,
        found.wanted.target_key,
    )
    planned: WebhookDelivery = WebhookDelivery.get_by_id(delivery_id)
    return planned
