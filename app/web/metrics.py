"""GET /metrics in Prometheus' text format."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.usecases import metrics

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def scrape() -> Response:
    settings = current_app.extensions["preview.settings"]
    token = settings.metrics_token
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token and not hmac.compare_digest(given.encode(), token.encode()):
        return Response("metrics need Authorization: Bearer <METRICS_TOKEN>\n", status=401, mimetype="text/plain")
    if not token and not settings.metrics_open:
        message = "metrics are closed: the operator sets METRICS_TOKEN (or METRICS_OPEN=true)\n"
        return Response(message, status=401, mimetype="text/plain")
    registry = current_app.extensions.setdefault(
        "preview.metrics", metrics.registry(current_app.extensions["preview.queue"])
    )
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
