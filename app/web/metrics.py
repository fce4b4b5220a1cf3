"""GET /metrics in Prometheus' text format."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.usecases import metrics

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def scrape() -> Response:
    registry = current_app.extensions.setdefault(
        "preview.metrics", metrics.registry(current_app.extensions["preview.queue"])
    )
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
