"""Use cases for accepted webhook deliveries: record them, plan, and hand them to the queue.

The delivery and the preview's desired state are written in one transaction
before anything is enqueued (the outbox). If Redis is down, the delivery stays
unqueued and `enqueue_pending` (run by the scheduler) queues it later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import peewee

from app.db import database, utcnow
from app.domain.gitea_events import CommentEvent, GiteaEvent, PullRequestEvent, PushEvent, RepositoryRef
from app.domain.planning import APPROVE, DEPLOY, LABELS, TEARDOWN, Plan, ignore, plan
from app.domain.states import DeliveryOutcome, PreviewState
from app.models import Event, Preview, Repository, WebhookDelivery
from app.settings import Settings
from app.usecases.jobs import PROCESS_DELIVERY_JOB
from app.usecases.ports import Queue, QueueUnavailable

log = logging.getLogger(__name__)

PIN_LABEL = "preview:keep"


@dataclass(frozen=True)
class DeliveryHeaders:
    delivery_uuid: str
    event: str
    event_type: str


def _open_pr_number(event: PushEvent) -> int | None:
    repository = Repository.get_or_none(Repository.full_name == event.repository.full_name)
    if repository is None or event.branch is None:
        return None
    preview = Preview.open_pr_for_branch(repository, event.branch)
    return preview.pr_number if preview else None


def _is_duplicate(target_key: str, intent: str, work_key: str) -> bool:
    """The target's last accepted work is this same work: a Gitea "Redeliver" of it.

    Anything else is new work, even a commit seen before: a force-push back to an earlier
    commit (A, B, then A again) must deploy A. Only Gitea can tell that from a stale
    redelivery of A's push, so the worker asks it (and follows its head) before building.
    A PR closed, reopened and closed again at the same sha is new work each time too.
    """
    accepted = (WebhookDelivery.target_key == target_key) & (WebhookDelivery.outcome == DeliveryOutcome.ACCEPTED)
    # One round trip: the last accepted delivery's id is a subquery.
    last = WebhookDelivery.select(peewee.fn.MAX(WebhookDelivery.id)).where(accepted)
    return bool(
        WebhookDelivery.select()
        .where(
            (WebhookDelivery.id == last) & (WebhookDelivery.work_key == work_key) & (WebhookDelivery.intent == intent)
        )
        .exists()
    )


def want_deploy(ref: RepositoryRef, wanted: Plan) -> Preview:
    """Record that `wanted.target_key` should run `wanted.head_sha`: the desired state the worker reconciles.

    Written with single-row updates of the desired fields only, never a save of a
    copy, so it cannot undo a worker's change and a worker cannot undo it.
    """
    repository = Repository.upsert(ref.full_name, ref.clone_url, ref.private)
    assert wanted.target_key
    assert wanted.head_sha
    assert wanted.branch
    now = utcnow()
    # Two deliveries for a new target at once: one inserts, both then update.
    Preview.insert(
        repository=repository,
        target_key=wanted.target_key,
        pr_number=wanted.pr_number,
        branch=wanted.branch,
        head_sha=wanted.head_sha,
        from_fork=wanted.from_fork,
        names_key=wanted.target_key,
        state=PreviewState.QUEUED,
        created_at=now,
        updated_at=now,
    ).on_conflict_ignore().execute()
    # A new deploy gets its own expiry when it takes its slot: an old one (past, after a TTL
    # teardown) must not expire it while it waits for a worker.
    desired = {
        "branch": wanted.branch,
        "head_sha": wanted.head_sha,
        "state": PreviewState.QUEUED,
        "updated_at": now,
        "expires_at": None,
    }
    if wanted.pr_number is not None:
        desired["from_fork"] = wanted.from_fork
    Preview.update(**desired).where(Preview.target_key == wanted.target_key).execute()
    # Without a slot it is in line from now on (keeping its place if it was in line already).
    Preview.update(waiting_since=now).where(
        (Preview.target_key == wanted.target_key) & (Preview.holds_slot == False) & Preview.waiting_since.is_null()  # noqa: E712
    ).execute()
    preview: Preview = Preview.get(Preview.target_key == wanted.target_key)
    Event.record(preview, "queued", f"{wanted.reason} at {wanted.head_sha[:12]}", progress=0)
    return preview


def want_teardown(wanted: Plan, ask_gitea_first: bool) -> Preview | None:
    """The live preview a close or delete asks to tear down (None: nothing is live).

    With Gitea to ask, nothing is marked here: the worker asks Gitea first, so a replayed or
    late close of a PR that is open today touches nothing. Without, the payload is all there
    is, and the preview is marked for teardown at once."""
    assert wanted.target_key
    now = utcnow()
    if ask_gitea_first:
        found: Preview | None = Preview.get_or_none(
            (Preview.target_key == wanted.target_key) & Preview.state.not_in(PreviewState.GONE)
        )
        if found is not None:
            Event.record(found, "teardown", f"{wanted.reason}: asking Gitea before tearing down")
        return found
    asked = (
        Preview.update(state=PreviewState.DELETING, waiting_since=None, updated_at=now)
        .where((Preview.target_key == wanted.target_key) & Preview.state.not_in(PreviewState.GONE))
        .execute()
    )
    if not asked:
        return None
    preview: Preview = Preview.get(Preview.target_key == wanted.target_key)
    Event.record(preview, "teardown", f"{wanted.reason}: teardown requested")
    return preview


def _update_pin(target_key: str, pinned: bool) -> None:
    Preview.update(pinned=pinned).where((Preview.target_key == target_key) & (Preview.pinned != pinned)).execute()


def record_delivery(settings: Settings, headers: DeliveryHeaders, event: GiteaEvent | None) -> WebhookDelivery:
    """Store the delivery and the desired state it implies, in one transaction."""
    with database.atomic():
        if event is None:
            wanted = ignore(f"event type {headers.event_type!r} is not acted on")
        else:
            open_pr = _open_pr_number(event) if isinstance(event, PushEvent) else None
            wanted = plan(event, settings, open_pr)
        outcome, reason, preview = DeliveryOutcome.IGNORED, wanted.reason, None
        if wanted.intent == LABELS and not settings.gitea_url:
            reason = "labels changed: the pin follows the payload (no GITEA_URL to ask)"
        elif wanted.intent in (APPROVE, LABELS):
            # Checked with Gitea by the worker (the head, the approver's access, the labels) before it counts.
            preview = Preview.get_or_none(
                (Preview.target_key == wanted.target_key) & Preview.state.in_(PreviewState.ACTIVE)
            )
            if preview is None:
                reason = f"{wanted.reason}, but there is no live preview it concerns"
            else:
                outcome = DeliveryOutcome.ACCEPTED
        elif wanted.intent in (DEPLOY, TEARDOWN) and wanted.target_key and wanted.work_key:
            if _is_duplicate(wanted.target_key, wanted.intent, wanted.work_key):
                outcome, reason = DeliveryOutcome.DUPLICATE, "the same work was already accepted"
            elif wanted.intent == DEPLOY:
                assert event is not None
                outcome, preview = DeliveryOutcome.ACCEPTED, want_deploy(event.repository, wanted)
            else:
                preview = want_teardown(wanted, ask_gitea_first=bool(settings.gitea_url))
                if preview is None:
                    reason = f"{wanted.reason}, but there is no live preview to tear down"
                else:
                    outcome = DeliveryOutcome.ACCEPTED
        if isinstance(event, PullRequestEvent) and not settings.gitea_url:
            # With Gitea the worker reads the real labels: a replayed payload's would be old.
            _update_pin(Preview.pr_key(event.repository.full_name, event.number), PIN_LABEL in event.labels)
        delivery: WebhookDelivery = WebhookDelivery.create(
            delivery_uuid=headers.delivery_uuid,
            event=headers.event,
            event_type=headers.event_type,
            action=wanted.action or (event.action if isinstance(event, PullRequestEvent | CommentEvent) else None),
            repository_full_name=event.repository.full_name if event else None,
            target_key=wanted.target_key,
            head_sha=wanted.head_sha,
            intent=wanted.intent,
            work_key=wanted.work_key,
            outcome=outcome,
            reason=reason,
            preview=preview,
            actor=wanted.actor,
        )
        return delivery


def enqueue_delivery(queue: Queue, delivery: WebhookDelivery) -> bool:
    """Queue the delivery's job; True once it is in the queue (now or before)."""
    try:
        queue.enqueue(PROCESS_DELIVERY_JOB, delivery.id, job_id=delivery.job_id)
    except QueueUnavailable as error:
        log.warning("queue unavailable, delivery kept for the scheduler delivery_id=%s error=%s", delivery.id, error)
        return False
    WebhookDelivery.update(enqueued_at=utcnow()).where(WebhookDelivery.id == delivery.id).execute()
    return True


def enqueue_pending(queue: Queue, limit: int = 100) -> int:
    """Queue accepted deliveries that never reached the queue; return how many were queued."""
    queued = 0
    for delivery in WebhookDelivery.unqueued(limit):
        if not enqueue_delivery(queue, delivery):
            break
        queued += 1
    return queued


def requeue_lost(queue: Queue, before: datetime, limit: int = 100) -> list[int]:
    """Deliveries queued before `before` and still not carried out whose job Redis no longer
    holds (flushed, failed over) or gave up on: queued again, under the same job id, so a
    delivery stays in the outbox until its work is done. Returns their ids."""
    requeued = []
    for delivery in WebhookDelivery.unfinished(before, limit):
        if queue.resubmit(PROCESS_DELIVERY_JOB, delivery.id, job_id=delivery.job_id):
            log.warning("delivery job lost or failed, queued again delivery_id=%s", delivery.id)
            requeued.append(delivery.id)
    return requeued
