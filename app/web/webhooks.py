"""POST /webhooks/gitea: verify, parse, store, enqueue, answer 202 (a worker plans it)."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from app.domain.gitea_events import PayloadError, parse_event
from app.domain.states import DeliveryOutcome
from app.usecases.intake import accept
from app.usecases.operations import metrics
from app.web import context

log = logging.getLogger(__name__)
blueprint = Blueprint("webhooks", __name__)

# The columns that hold them (a longer value would fail the insert, not be refused clearly).
DELIVERY_ID_MAX = EVENT_MAX = 64


def _error(status: int, message: str) -> ResponseReturnValue:
    return jsonify(error=message), status


def _claimed_repository(payload: Any) -> tuple[str | None, int | None]:
    """The repository the body says it is about (name, Gitea's id): only to choose the secret
    that must have signed it."""
    try:
        claimed = payload["repository"]
        name, gitea_id = claimed["full_name"], claimed.get("id")
    except (KeyError, TypeError, AttributeError):
        return None, None
    return (name if isinstance(name, str) else None), (gitea_id if type(gitea_id) is int else None)


def _parsed(body: bytes) -> tuple[str, Any] | None:
    """The body as text and as JSON; None when it is not UTF-8 JSON (nor nested too deeply)."""
    try:
        text = body.decode("utf-8")
        return text, json.loads(text)
    except (ValueError, RecursionError):
        return None


@blueprint.post("/webhooks/gitea")
def receive_gitea_webhook() -> ResponseReturnValue:
    """One database round trip (the insert) and one Redis round trip (the job); every few
    seconds, also the read of the webhook secrets (app/usecases/intake/signers.py)."""
    settings = context.settings()
    if (request.content_length or 0) > settings.max_webhook_bytes:
        return _error(413, f"body larger than {settings.max_webhook_bytes} bytes")
    body = request.get_data(cache=False)
    if len(body) > settings.max_webhook_bytes:
        return _error(413, f"body larger than {settings.max_webhook_bytes} bytes")
    parsed = _parsed(body)
    claimed, claimed_id = _claimed_repository(parsed[1] if parsed else None)
    signature = request.headers.get("X-Gitea-Signature")
    verdict = context.signers().verify(claimed, claimed_id, body, signature)
    if not verdict.secret_known:
        log.warning("refused a webhook for an unregistered repository repository=%r", claimed)
        metrics.record_refused_webhook(context.services().counters, "unregistered")
        return _error(404, "this repository is not registered with the preview service")
    if not verdict.verified:
        log.warning("rejected webhook with a missing or wrong signature repository=%r", claimed)
        metrics.record_refused_webhook(context.services().counters, "signature")
        return _error(401, "missing or invalid X-Gitea-Signature")

    headers = accept.DeliveryHeaders(
        delivery_uuid=request.headers.get("X-Gitea-Delivery", "").strip(),
        event=request.headers.get("X-Gitea-Event", "").strip(),
        event_type=request.headers.get("X-Gitea-Event-Type", "").strip()
        or request.headers.get("X-Gitea-Event", "").strip(),
    )
    if not headers.delivery_uuid or not headers.event_type:
        return _error(400, "missing X-Gitea-Delivery or X-Gitea-Event header")
    if len(headers.delivery_uuid) > DELIVERY_ID_MAX or max(len(headers.event), len(headers.event_type)) > EVENT_MAX:
        return _error(400, f"X-Gitea-Delivery or X-Gitea-Event is longer than {EVENT_MAX} characters")
    if parsed is None:
        return _error(400, "the body is not valid JSON")
    try:
        event = parse_event(headers.event_type, parsed[1])
    except PayloadError as error:
        return _error(400, str(error))

    received = accept.receive(settings, headers, parsed[0], signature, event, claimed)
    log.info(
        # Quoted (%r): these come from the payload, and a newline in them must not forge a log line.
        "webhook delivery=%r event_type=%r outcome=%s target=%r",
        headers.delivery_uuid,
        headers.event_type,
        received.outcome,
        received.target_key,
    )
    queued = False
    if received.outcome == DeliveryOutcome.RECEIVED and received.delivery_id is not None:
        queued = accept.enqueue(context.services().queue, received.delivery_id)
    return jsonify(
        delivery_id=received.delivery_id,
        outcome=received.outcome,
        reason=received.reason,
        queued=queued,
    ), 202
