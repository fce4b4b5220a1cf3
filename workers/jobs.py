"""RQ entry points: take an id, open a connection, call one use case."""

from __future__ import annotations

from app.db import database
from app.usecases import deliveries, pipeline
from workers.context import services


def process_delivery(delivery_id: int) -> str:
    context = services()
    with database.connection_context():
        return deliveries.process_delivery(context, delivery_id)


def deploy_preview(preview_id: int, sha: str) -> str:
    context = services()
    with database.connection_context():
        return pipeline.deploy(context, preview_id, sha)


def teardown_preview(preview_id: int, reason: str) -> str:
    context = services()
    with database.connection_context():
        return pipeline.teardown(context, preview_id, reason)


def report_preview(preview_id: int) -> None:
    context = services()
    with database.connection_context():
        pipeline.report_again(context, preview_id)
