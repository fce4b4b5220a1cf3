"""RQ entry points: take an id, open a connection, call one use case."""

from __future__ import annotations

from app import processing
from app.db import database
from workers.context import started


def process_delivery(delivery_id: int) -> str:
    started()
    with database.connection_context():
        return processing.process_delivery(delivery_id)
