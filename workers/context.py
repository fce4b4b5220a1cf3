"""Process-wide set-up shared by the worker's jobs and the scheduler."""

from __future__ import annotations

from functools import cache

import peewee

from app import runtime
from app.adapters.jobqueue import JobQueue
from app.runtime import Services
from app.settings import Settings


@cache
def started() -> tuple[Settings, peewee.Database, JobQueue]:
    """Read settings and open the database and queue once per process."""
    settings = Settings.from_env()
    db, queue = runtime.start(settings)
    return settings, db, queue


@cache
def services() -> Services:
    """The adapters a job needs: Kubernetes, Gitea (when configured) and the queue."""
    settings, _, queue = started()
    return runtime.services(settings, queue)
