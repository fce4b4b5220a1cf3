"""Use case run by the worker for one accepted delivery."""

from __future__ import annotations

import logging

from app.db import database, utcnow
from app.domain.planning import DEPLOY, TEARDOWN
from app.models import DeliveryOutcome, Event, WebhookDelivery
from app.runtime import Services
from app.usecases import pipeline

log = logging.getLogger(__name__)


def _newer_delivery_exists(delivery: WebhookDelivery) -> bool:
    return (
        WebhookDelivery.select()
        .where(
            (WebhookDelivery.target_key == delivery.target_key)
            & (WebhookDelivery.outcome == DeliveryOutcome.ACCEPTED)
            & (WebhookDelivery.id > delivery.id)
        )
        .exists()
    )


def process_delivery(services: Services, delivery_id: int) -> str:
    """Carry out one delivery's intent. Safe to re-run: a processed delivery is skipped.

    Returns a short word for the job's result: ready, failed, deleted, superseded, skipped.
    A Kubernetes error propagates, so the queue retries the job later.
    """
    delivery = WebhookDelivery.get_or_none(WebhookDelivery.id == delivery_id)
    if delivery is None or delivery.processed_at is not None:
        return "skipped"
    if delivery.preview is None or _newer_delivery_exists(delivery):
        # A later push or close for the same preview already owns its desired state.
        result = "superseded"
    elif delivery.intent == DEPLOY:
        result = pipeline.deploy(services, delivery.preview_id, delivery.head_sha)
    elif delivery.intent == TEARDOWN:
        result = pipeline.teardown(services, delivery.preview_id, delivery.reason or "teardown requested")
    else:
        result = "skipped"
    with database.atomic():
        if delivery.preview is not None:
            Event.record(delivery.preview, "delivery", f"delivery {delivery.id} ({delivery.intent}) {result}")
        WebhookDelivery.update(processed_at=utcnow()).where(WebhookDelivery.id == delivery.id).execute()
    log.info("delivery processed delivery_id=%s intent=%s result=%s", delivery.id, delivery.intent, result)
    return result
