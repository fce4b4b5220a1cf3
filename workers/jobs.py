"""RQ entry points: take an id, open a connection, call one use case."""

from __future__ import annotations

import logging

from app.db import database
from app.usecases.deploy import pipeline, reporting, screenshots, sleeping, teardown
from app.usecases.intake import deliveries
from workers.context import services

log = logging.getLogger(__name__)


def process_delivery(delivery_id: int) -> str:
    context = services()
    with database.connection_context():
        return deliveries.process_delivery(context, delivery_id)


def deploy_preview(preview_id: int, sha: str) -> str:
    context = services()
    with database.connection_context():
        result = pipeline.deploy(context, preview_id, sha)
    log.info("deploy job done preview_id=%s sha=%s result=%s", preview_id, sha[:12], result)
    return result


def teardown_preview(preview_id: int, reason: str) -> str:
    context = services()
    with database.connection_context():
        result = teardown.teardown(context, preview_id, reason)
    log.info("teardown job done preview_id=%s result=%s", preview_id, result)
    return result


def report_preview(preview_id: int) -> str:
    context = services()
    with database.connection_context():
        return reporting.report_due(context, preview_id)


def sleep_preview(preview_id: int) -> str:
    context = services()
    with database.connection_context():
        result = sleeping.put_to_sleep(context, preview_id)
    log.info("sleep job done preview_id=%s result=%s", preview_id, result)
    return result


def wake_preview(preview_id: int) -> str:
    context = services()
    with database.connection_context():
        result = sleeping.wake_up(context, preview_id)
    log.info("wake job done preview_id=%s result=%s", preview_id, result)
    return result


def screenshot_preview(preview_id: int, sha: str, pages: str) -> str:
    context = services()
    with database.connection_context():
        result = screenshots.take(context, preview_id, sha, tuple(pages.split()))
    log.info("screenshot job done preview_id=%s sha=%s result=%s", preview_id, sha[:12], result)
    return result
