"""The database handle: one peewee proxy, bound at start-up from DATABASE_URL."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect

database = peewee.DatabaseProxy()


def utcnow() -> datetime:
    """Naive UTC: what the DateTimeFields store on both SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


def open_database(url: str) -> peewee.Database:
    """Bind the proxy to the database at `url` and return it.

    SQLite gets WAL and a busy timeout so the web, worker and scheduler
    processes can share one file; its folder is created if missing.
    """
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        db = connect(url, pragmas={"journal_mode": "wal", "busy_timeout": 10000, "foreign_keys": 1})
    else:
        db = connect(url.replace("postgres://", "postgresql://", 1))
    database.initialize(db)
    return db
