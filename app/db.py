"""The database handle: one peewee proxy, bound at start-up from DATABASE_URL."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect

database = peewee.DatabaseProxy()


def utcnow() -> datetime:
    """Naive UTC: what the DateTimeFields store on both SQLite and PostgreSQL."""
    return datetime.now(UTC).replace(tzinfo=None)


def database_now() -> datetime:
    """Naive UTC by the database server's clock: what leases and expiries are compared with,
    so a process whose own clock is off (a paused VM, a bad NTP) cannot take a live lease or
    expire a preview early. SQLite runs in our process: its clock is ours."""
    db = database.obj
    if isinstance(db, peewee.PostgresqlDatabase):
        row = db.execute_sql("SELECT clock_timestamp() AT TIME ZONE 'UTC'").fetchone()
        return row[0].replace(tzinfo=None)
    return utcnow()


class ImmediateSqliteDatabase(peewee.SqliteDatabase):
    """SQLite whose transactions take the write lock when they begin (BEGIN IMMEDIATE).

    A deferred transaction that reads, then writes after another process committed, fails
    at once with "database is locked": its snapshot is stale, and the busy timeout does not
    help it. Taking the lock first makes it wait its turn (up to the busy timeout) instead.
    Every transaction of ours writes, so this costs no concurrency worth keeping."""

    def begin(self, lock_type: str | None = None) -> None:
        super().begin(lock_type or "IMMEDIATE")


# The web's PostgreSQL pool, per gunicorn worker process: connections are reused for
# 5 minutes, and a request waits up to 10 s for a free one rather than failing at once.
POOL_SIZE = 20
POOL_RECYCLE_SECONDS = 300
POOL_WAIT_SECONDS = 10


def open_database(url: str, pooled: bool = False) -> peewee.Database:
    """Bind the proxy to the database at `url` and return it.

    SQLite gets WAL and a busy timeout so the web, worker and scheduler
    processes can share one file; its folder is created if missing.
    `pooled` (PostgreSQL only, for the web): a new PostgreSQL connection is a new
    server process with cold caches, measured at 6 ms to connect plus about 4 ms on
    its first queries, most of a webhook's time. Never for processes that fork (RQ's
    work horses would inherit the parent's pooled sockets).
    """
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        db = ImmediateSqliteDatabase(
            path or ":memory:", pragmas={"journal_mode": "wal", "busy_timeout": 10000, "foreign_keys": 1}
        )
    elif pooled:
        db = connect(
            re.sub(r"^postgres(ql)?://", "postgresql+pool://", url),
            max_connections=POOL_SIZE,
            stale_timeout=POOL_RECYCLE_SECONDS,
            timeout=POOL_WAIT_SECONDS,
        )
    else:
        db = connect(url.replace("postgres://", "postgresql://", 1))
    database.initialize(db)
    return db


def cooperate_with_gevent() -> None:
    """Under gunicorn's gevent workers, let a request waiting on PostgreSQL yield to the others.

    psycopg2 otherwise blocks the whole worker process for each query's round trip. Its
    documented hook for coroutine libraries: a wait callback that polls the connection
    and parks the greenlet on the socket. Only ever called once gevent has patched sockets.
    """
    import psycopg2
    import psycopg2.extensions
    from gevent.socket import wait_read, wait_write

    def wait(connection: Any, timeout: float | None = None) -> None:
        while True:
            state = connection.poll()
            if state == psycopg2.extensions.POLL_OK:
                return
            if state == psycopg2.extensions.POLL_READ:
                wait_read(connection.fileno(), timeout=timeout)
            elif state == psycopg2.extensions.POLL_WRITE:
                wait_write(connection.fileno(), timeout=timeout)
            else:
                raise psycopg2.OperationalError(f"unexpected state from psycopg2's poll(): {state}")

    psycopg2.extensions.set_wait_callback(wait)


@contextlib.contextmanager
def exclusive(lock_name: str) -> Iterator[None]:
    """A transaction that no other process runs at the same time under the same `lock_name`.

    PostgreSQL: a transaction-scoped advisory lock, keyed by the name. SQLite: the
    database's write lock taken up front (BEGIN IMMEDIATE), which serialises every
    writer anyway. Either way the lock goes with the transaction's end, whatever happens.
    """
    db = database.obj
    if isinstance(db, peewee.PostgresqlDatabase):
        key = int.from_bytes(hashlib.sha256(lock_name.encode()).digest()[:8], "big", signed=True)
        with db.atomic():
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (key,))
            yield
    else:
        with db.atomic(lock_type="IMMEDIATE"):
            yield
