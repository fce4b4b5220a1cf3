"""Use case run by the worker for one accepted delivery."""

from __future__ import annotations

import logging

from app.db import database, utcnow
from app.models import DeliveryOutcome, Event, WebhookDelivery

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


def process_delivery(delivery_id: int) -> str:
    """Carry out one delivery's intent. Safe to re-run: a processed delivery is skipped.

    Returns a short word for the job's result: processed, superseded, skipped.
    """
    delivery = WebhookDelivery.get_or_none(WebhookDelivery.id == delivery_id)
    if delivery is None or delivery.processed_at is not None:
        return "skipped"
    result = "processed"
    if _newer_delivery_exists(delivery):
        # A later push or close for the same preview already owns its desired state.
        result = "superseded"
    with database.atomic():
        if delivery.preview is not None:
            Event.record(delivery.preview, "delivery", f"delivery {delivery.id} ({delivery.intent}) {result}")
        WebhookDelivery.update(processed_at=utcnow()).where(WebhookDelivery.id == delivery.id).execute()
    log.info("delivery processed delivery_id=%s intent=%s result=%s", delivery.id, delivery.intent, result)
    return result
