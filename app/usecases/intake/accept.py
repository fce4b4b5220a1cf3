"""Intake of a verified webhook delivery: decide what needs no database, store it, queue it.

Gitea waits at most 5 s and never retries, so the web answers after one insert and one
Redis call. What needs no database is decided here (the event type, the branch patterns:
`ignored`); the signed body is stored under Gitea's delivery id in one statement (an id
seen before is `duplicate` at once) and its job queued. A worker then plans it against
the database (app/usecases/intake/triage.py) and records the outcome on the delivery.

The stored delivery is the outbox: if Redis is down, it stays unqueued and the scheduler
queues it later (`requeue_unfinished`). Nothing answered 202 is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from app.domain.gitea_events import CommentEvent, GiteaEvent, PullRequestEvent
from app.domain.planning import Plan, ignore, plan
from app.domain.states import DeliveryOutcome
from app.models import WebhookDelivery
from app.settings import Settings
from app.usecases.jobs import PROCESS_DELIVERY_JOB
from app.usecases.ports import Queue, QueueUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryHeaders:
    delivery_uuid: str
    event: str
    event_type: str


@dataclass(frozen=True)
class Received:
    """What intake answers: the delivery's id (a duplicate's: the first one's, when known)."""

    delivery_id: int | None
    outcome: DeliveryOutcome
    reason: str
    target_key: str | None


def delivery_job_id(delivery_id: int) -> str:
    return f"delivery-{delivery_id}"


def first_look(settings: Settings, headers: DeliveryHeaders, event: GiteaEvent | None) -> tuple[Plan, bool]:
    """The plan as far as the payload alone can tell, and whether a worker has anything to do
    with it. Without GITEA_URL a PR's labels set the pin from the payload, whatever it asks."""
    if event is None:
        return ignore(f"event type {headers.event_type!r} is not acted on"), False
    wanted = plan(event, settings, open_pr_number=None)  # an open PR for a push: the worker looks
    pin_from_payload = isinstance(event, PullRequestEvent) and not settings.gitea_url
    return wanted, wanted.intent is not None or pin_from_payload


def receive(
    settings: Settings,
    headers: DeliveryHeaders,
    body: str,
    signature: str | None,
    event: GiteaEvent | None,
    claimed: str | None,
) -> Received:
    """Store the delivery in one statement (the body only when a worker will plan it).
    `claimed`: the repository the signed body names, recorded even for an event we ignore."""
    wanted, for_worker = first_look(settings, headers, event)
    outcome = DeliveryOutcome.RECEIVED if for_worker else DeliveryOutcome.IGNORED
    reason = "received: a worker plans it" if for_worker else wanted.reason
    stored = WebhookDelivery.store_received(
        delivery_uuid=headers.delivery_uuid,
        event=headers.event,
        event_type=headers.event_type,
        action=wanted.action or (event.action if isinstance(event, PullRequestEvent | CommentEvent) else None),
        repository_full_name=event.repository.full_name if event else (claimed or "")[:255] or None,
        target_key=wanted.target_key,
        head_sha=wanted.head_sha,
        intent=wanted.intent,
        work_key=wanted.work_key,
        actor=wanted.actor,
        outcome=outcome,
        reason=reason,
        body=body if for_worker else None,
        signature=signature if for_worker else None,
    )
    if stored is None:
        first = WebhookDelivery.get_or_none(WebhookDelivery.delivery_uuid == headers.delivery_uuid)
        return Received(
            first.id if first else None,
            DeliveryOutcome.DUPLICATE,
            f"delivery {headers.delivery_uuid} was received before",
            wanted.target_key,
        )
    return Received(stored, outcome, reason, wanted.target_key)


def enqueue(queue: Queue, delivery_id: int) -> bool:
    """Queue the delivery's job; True once it is in the queue (now or before)."""
    try:
        queue.enqueue(PROCESS_DELIVERY_JOB, delivery_id, job_id=delivery_job_id(delivery_id))
    except QueueUnavailable as error:
        log.warning("queue unavailable, delivery kept for the scheduler delivery_id=%s error=%s", delivery_id, error)
        return False
    return True


def requeue_unfinished(
    queue: Queue, received_before: datetime, stalled_before: datetime, limit: int = 100
) -> list[int]:
    """Deliveries received before `received_before` and still not carried out whose job Redis
    does not hold (never queued because Redis was down, flushed, failed over) or gave up on:
    queued again under the same job id, so a delivery stays in the outbox until its work is
    done. A job still waiting or running is left alone, except a running job whose delivery,
    received before `stalled_before`, is still not planned: planning takes a worker moments,
    so its worker died (once planned, the preview's own lease and the scheduler resume it).
    Returns the ids queued."""
    requeued = []
    for delivery in WebhookDelivery.unfinished(received_before, limit):
        unplanned = delivery.outcome == DeliveryOutcome.RECEIVED and delivery.received_at < stalled_before
        try:
            queued = queue.resubmit(
                PROCESS_DELIVERY_JOB, delivery.id, job_id=delivery_job_id(delivery.id), running_is_lost=unplanned
            )
        except QueueUnavailable as error:
            log.warning("queue unavailable, unfinished deliveries wait for the next pass error=%s", error)
            break
        if queued:
            log.warning("delivery job missing or failed, queued again delivery_id=%s", delivery.id)
            requeued.append(delivery.id)
    return requeued
