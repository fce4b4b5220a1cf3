"""Versioned schema migrations, applied in order by `apply_migrations`.

Each module `mNNNN_name.py` defines `statements(types) -> list[str]`: plain SQL
written against `types`, the column types of the current dialect. SQL is used
instead of the live models so that an old migration keeps meaning what it
meant when it was written.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import peewee

from app.db import utcnow

log = logging.getLogger(__name__)

_MODULE_NAME = re.compile(r"m(\d{4})_\w+")
LOCK_KEY = "gitea-previews:migrations"


@dataclass(frozen=True)
class ColumnTypes:
    pk: str
    datetime: str
    boolean: str
    blob: str


SQLITE = ColumnTypes(pk="INTEGER PRIMARY KEY AUTOINCREMENT", datetime="DATETIME", boolean="INTEGER", blob="BLOB")
POSTGRES = ColumnTypes(pk="SERIAL PRIMARY KEY", datetime="TIMESTAMP", boolean="BOOLEAN", blob="BYTEA")


def available() -> list[tuple[int, str]]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        match = _MODULE_NAME.fullmatch(info.name)
        if match:
            found.append((int(match.group(1)), info.name))
    return sorted(found)


def applied(db: peewee.Database) -> set[int]:
    timestamp = "TIMESTAMP" if isinstance(db, peewee.PostgresqlDatabase) else "DATETIME"
    db.execute_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        f" (version INTEGER PRIMARY KEY, name VARCHAR(255) NOT NULL, applied_at {timestamp} NOT NULL)"
    )
    return {row[0] for row in db.execute_sql("SELECT version FROM schema_migrations")}


@contextlib.contextmanager
def _one_migrator(db: peewee.Database) -> Iterator[None]:
    """One process migrates at a time: two pods of a rolling upgrade may both run `migrate`.
    PostgreSQL: a session advisory lock. SQLite: each migration's transaction takes the write
    lock first (IMMEDIATE) and looks again at what is applied."""
    if not isinstance(db, peewee.PostgresqlDatabase):
        yield
        return
    db.execute_sql("SELECT pg_advisory_lock(hashtext(%s))", (LOCK_KEY,))
    try:
        yield
    finally:
        db.execute_sql("SELECT pg_advisory_unlock(hashtext(%s))", (LOCK_KEY,))


def _transaction(db: peewee.Database) -> Any:
    return db.atomic("IMMEDIATE") if isinstance(db, peewee.SqliteDatabase) else db.atomic()


def apply_migrations(db: peewee.Database) -> list[str]:
    """Apply every migration not yet applied, each in its own transaction; return their names."""
    types = POSTGRES if isinstance(db, peewee.PostgresqlDatabase) else SQLITE
    with _one_migrator(db):
        return _apply(db, types)


def _apply(db: peewee.Database, types: ColumnTypes) -> list[str]:
    applied(db)  # the table exists
    names = []
    for version, name in available():
        module = importlib.import_module(f"{__name__}.{name}")
        with _transaction(db):
            if version in applied(db):
                continue  # another process applied it meanwhile
            for statement in module.statements(types):
                db.execute_sql(statement)
            db.execute_sql(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)"
                if types is POSTGRES
                else "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, utcnow()),
            )
        log.info("applied migration version=%d name=%s", version, name)
        names.append(name)
    return names


def pending(db: peewee.Database) -> list[str]:
    done = applied(db)
    return [name for version, name in available() if version not in done]
