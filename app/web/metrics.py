"""GET /metrics in Prometheus' text format."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.usecases.operations import metrics
from app.web import context

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def scrape() -> Response:
    settings = context.settings()
    token = settings.metrics_token
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token and not hmac.compare_digest(given.encode(), token.encode()):
        return Response("metrics need Authorization: Bearer <METRICS_TOKEN>\n", status=401, mimetype="text/plain")
    if not token and not settings.metrics_open:
        message = "metrics are closed: the operator sets METRICS_TOKEN (or METRICS_OPEN=true)\n"
        return Response(message, status=401, mimetype="text/plain")
    web = context.web()
    if web.metrics is None:  # one registry per process, made on the first scrape
        web.metrics = metrics.registry(web.services.queue, web.services.counters)
    return Response(generate_latest(web.metrics), mimetype=CONTENT_TYPE_LATEST)
