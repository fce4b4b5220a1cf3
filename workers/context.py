"""Process-wide set-up shared by the worker's jobs and the scheduler."""

from __future__ import annotations

from functools import cache

from app import bootstrap
from app.settings import Settings
from app.usecases.ports import Services


@cache
def services() -> Services:
    """Read the settings, bind the database and make the adapters, once per process."""
    return bootstrap.start(Settings.from_env())
