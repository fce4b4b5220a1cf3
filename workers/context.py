"""Process-wide set-up shared by the worker's jobs and the scheduler."""

from __future__ import annotations

from app import bootstrap
from app.settings import Settings
from app.usecases.ports import Services

_started: Services | None = None


def start(pooled: bool = False) -> Services:
    """Read the settings, bind the database and make the adapters, once per process.
    `pooled`: keep PostgreSQL connections between jobs (app/db.py's open_database: only in a
    process that forks nothing after connecting)."""
    global _started
    if _started is None:
        _started = bootstrap.start(Settings.from_env(), pooled=pooled)
    return _started


def services() -> Services:
    return start()
