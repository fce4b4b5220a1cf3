"""POST /webhooks/gitea: verify, parse, record, enqueue, answer 202."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from app.domain.gitea_events import PayloadError, parse_event
from app.domain.signature import signature_matches
from app.domain.states import DeliveryOutcome
from app.usecases.intake import accept, repositories
from app.usecases.operations import metrics
from app.web import context

log = logging.getLogger(__name__)
blueprint = Blueprint("webhooks", __name__)


def _error(status: int, message: str) -> ResponseReturnValue:
    return jsonify(error=message), status


def _claimed_repository(body: bytes) -> tuple[str | None, int | None]:
    """The repository the body says it is about (name, Gitea's id): only to choose the secret
    that must have signed it."""
    try:
        claimed = json.loads(body)["repository"]
        name, gitea_id = claimed["full_name"], claimed.get("id")
    except (ValueError, RecursionError, KeyError, TypeError, AttributeError):
        return None, None
    return (name if isinstance(name, str) else None), (gitea_id if type(gitea_id) is int else None)


@blueprint.post("/webhooks/gitea")
def receive_gitea_webhook() -> ResponseReturnValue:
    settings = context.settings()
    if (request.content_length or 0) > settings.max_webhook_bytes:
        return _error(413, f"body larger than {settings.max_webhook_bytes} bytes")
    body = request.get_data(cache=False)
    if len(body) > settings.max_webhook_bytes:
        return _error(413, f"body larger than {settings.max_webhook_bytes} bytes")
    claimed, claimed_id = _claimed_repository(body)
    repository = repositories.for_delivery(claimed, claimed_id)
    secret = repositories.signing_secret(settings, repository)
    if secret is None:
        log.warning("refused a webhook for an unregistered repository repository=%r", claimed)
        metrics.record_refused_webhook(context.services().counters, "unregistered")
        return _error(404, "this repository is not registered with the preview service")
    if not signature_matches(secret, body, request.headers.get("X-Gitea-Signature")):
        log.warning("rejected webhook with a missing or wrong signature repository=%r", claimed)
        metrics.record_refused_webhook(context.services().counters, "signature")
        return _error(401, "missing or invalid X-Gitea-Signature")
    if not repositories.confirm_name(context.services().gitea, repository, claimed):
        return _error(503, "the repository has a new name that Gitea did not confirm yet; try again")

    headers = accept.DeliveryHeaders(
        delivery_uuid=request.headers.get("X-Gitea-Delivery", "").strip(),
        event=request.headers.get("X-Gitea-Event", "").strip(),
        event_type=request.headers.get("X-Gitea-Event-Type", "").strip()
        or request.headers.get("X-Gitea-Event", "").strip(),
    )
    if not headers.delivery_uuid or not headers.event_type:
        return _error(400, "missing X-Gitea-Delivery or X-Gitea-Event header")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deeply to parse
        return _error(400, "the body is not valid JSON")
    try:
        event = parse_event(headers.event_type, payload)
    except PayloadError as error:
        return _error(400, str(error))

    delivery = accept.record_delivery(settings, headers, event)
    log.info(
        # Quoted (%r): these come from the payload, and a newline in them must not forge a log line.
        "webhook delivery=%r event_type=%r outcome=%s target=%r",
        headers.delivery_uuid,
        headers.event_type,
        delivery.outcome,
        delivery.target_key,
    )
    queued = False
    if delivery.outcome == DeliveryOutcome.ACCEPTED:
        queued = accept.enqueue_delivery(context.services().queue, delivery)
    return jsonify(
        delivery_id=delivery.id,
        outcome=delivery.outcome,
        reason=delivery.reason,
        preview_id=delivery.preview_id,
        queued=queued,
    ), 202
