"""Shared database servers: create and drop one database and one role per preview.

The operator gives an admin URL (PREVIEW_POSTGRES_ADMIN_URL, PREVIEW_MYSQL_ADMIN_URL);
every name passed here was made by app.domain.databases, and is quoted as an
identifier anyway. Errors of any kind become `SqlAdminError`, raised before
anything is dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from app.domain.databases import PORTS, Connection
from app.usecases.ports import SqlAdmin, SqlAdminError

__all__ = ["MysqlAdmin", "PostgresAdmin", "SqlAdmin", "SqlAdminError", "admins"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10


def _address(url: str, app_address: str | None, engine: str) -> tuple[str, int]:
    if app_address:
        host, _, port = app_address.rpartition(":")
        return host, int(port)
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or PORTS[engine]


class PostgresAdmin:
    engine = "postgres"

    def __init__(self, admin_url: str, app_address: str | None = None) -> None:
        self.admin_url = admin_url
        self.host, self.port = _address(admin_url, app_address, self.engine)

    @contextmanager
    def _cursor(self, database: str | None = None) -> Iterator[Any]:
        import psycopg2

        try:
            options = {"dbname": database} if database else {}
            conn = psycopg2.connect(self.admin_url, connect_timeout=CONNECT_TIMEOUT, **options)
        except psycopg2.Error as error:
            raise SqlAdminError(f"cannot reach the shared PostgreSQL server: {_first_line(error)}") from None
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                yield cursor
        except psycopg2.Error as error:
            raise SqlAdminError(f"PostgreSQL: {_first_line(error)}") from None
        finally:
            conn.close()

    def ensure(self, name: str, password: str, template: str | None = None) -> bool:
        """The role (with this password) and its database; True when the database was created now.
        With `template`, a new database is a copy of it, its objects handed to the new role."""
        from psycopg2 import sql

        created = False
        with self._cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
            verb = "ALTER" if cursor.fetchone() else "CREATE"
            cursor.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(name)), (password,))
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                statement = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name))
                if template:
                    statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
                _retry_while_template_busy(lambda: cursor.execute(statement))
                # Other previews' roles may not even connect to it.
                cursor.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
                created = True
        if created and template:
            with self._cursor(name) as cursor:
                tpl, new = sql.Identifier(template), sql.Identifier(name)
                cursor.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(tpl, new))
                # A template of an earlier release was still its role's, and REASSIGN moved it: to the admin.
                cursor.execute(sql.SQL("ALTER DATABASE {} OWNER TO CURRENT_USER").format(tpl))
        return created

    def drop(self, name: str) -> None:
        from psycopg2 import sql

        with self._cursor() as cursor:
            if self._exists(cursor, name):  # a template cannot be dropped until it is unmarked
                cursor.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(name)))
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))

    @staticmethod
    def _exists(cursor: Any, name: str) -> bool:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cursor.fetchone() is not None

    def names(self, prefix: str) -> set[str]:
        """Databases and roles whose name starts with `prefix`."""
        pattern = _like_prefix(prefix)
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s ESCAPE '\\'"
                " UNION SELECT rolname FROM pg_roles WHERE rolname LIKE %s ESCAPE '\\'",
                (pattern, pattern),
            )
            return {row[0] for row in cursor.fetchall()}

    def size(self, name: str) -> int | None:
        with self._cursor() as cursor:
            cursor.execute("SELECT pg_database_size(datname) FROM pg_database WHERE datname = %s", (name,))
            row = cursor.fetchone()
            return int(row[0]) if row else None

    def is_ready_template(self, name: str) -> bool:
        """A finished template: marked so when its migrate and seed succeeded."""
        with self._cursor() as cursor:
            cursor.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", (name,))
            row = cursor.fetchone()
            return bool(row and row[0])

    def mark_template(self, name: str) -> None:
        """Finished: clones may copy it, and nobody may connect to it any more (a connection blocks
        cloning). Frozen for good: the admin owns the database (its owner could allow connections
        again) and its role may not log in."""
        from psycopg2 import sql

        with self._cursor() as cursor:
            cursor.execute(
                sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(sql.Identifier(name))
            )
            cursor.execute(sql.SQL("ALTER DATABASE {} OWNER TO CURRENT_USER").format(sql.Identifier(name)))
            cursor.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(name)))
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )

    @contextmanager
    def exclusive(self, key: str) -> Iterator[bool]:
        """A session advisory lock on `key` for the block: True when this caller holds it."""
        with self._cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
            held = bool(cursor.fetchone()[0])
            try:
                yield held
            finally:
                if held:
                    cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))

    def connection(self, name: str, password: str) -> Connection:
        return Connection(self.engine, self.host, self.port, name, name, password)


class MysqlAdmin:
    engine = "mysql"

    def __init__(self, admin_url: str, app_address: str | None = None) -> None:
        self.admin_url = admin_url
        self.host, self.port = _address(admin_url, app_address, self.engine)

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        import pymysql

        parts = urlsplit(self.admin_url)
        try:
            conn = pymysql.connect(
                host=parts.hostname or "localhost",
                port=parts.port or PORTS[self.engine],
                user=unquote(parts.username or "root"),
                password=unquote(parts.password or ""),
                connect_timeout=CONNECT_TIMEOUT,
                autocommit=True,
            )
        except pymysql.MySQLError as error:
            raise SqlAdminError(f"cannot reach the shared MySQL server: {_first_line(error)}") from None
        try:
            with conn.cursor() as cursor:
                yield cursor
        except pymysql.MySQLError as error:
            raise SqlAdminError(f"MySQL: {_first_line(error)}") from None
        finally:
            conn.close()

    def ensure(self, name: str, password: str, template: str | None = None) -> bool:
        if template:
            raise SqlAdminError("template databases are a PostgreSQL feature")
        identifier = _mysql_identifier(name)
        with self._cursor() as cursor:
            cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (name,))
            created = cursor.fetchone() is None
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS {identifier}")
            cursor.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (name, password))
            cursor.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (name, password))
            # In a GRANT's database name `_` and `%` are wildcards: `preview_1` would match `previewX1`.
            cursor.execute(f"GRANT ALL PRIVILEGES ON {_mysql_grant_database(name)}.* TO %s@'%%'", (name,))
        return created

    def drop(self, name: str) -> None:
        with self._cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {_mysql_identifier(name)}")
            cursor.execute("DROP USER IF EXISTS %s@'%%'", (name,))

    def names(self, prefix: str) -> set[str]:
        pattern = _like_prefix(prefix)
        with self._cursor() as cursor:
            cursor.execute("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", (pattern,))
            found = {row[0] for row in cursor.fetchall()}
            cursor.execute("SELECT user FROM mysql.user WHERE user LIKE %s AND host = '%%'", (pattern,))
            return found | {row[0] for row in cursor.fetchall()}

    def size(self, name: str) -> int | None:
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = %s", (name,)
            )
            row = cursor.fetchone()
            return int(row[0]) if row and row[0] is not None else None

    def connection(self, name: str, password: str) -> Connection:
        return Connection(self.engine, self.host, self.port, name, name, password)


def _mysql_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _mysql_grant_database(name: str) -> str:
    """The database `name` exactly, as a GRANT reads it (where `_` and `%` match any character)."""
    return _mysql_identifier(name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%"))


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [error.__class__.__name__])[0]


def _retry_while_template_busy(create: Any, attempts: int = 5) -> None:
    """CREATE DATABASE ... TEMPLATE fails while anyone else is connected to the template: a
    clone running at the same moment, say. Try a few times before giving up."""
    import psycopg2

    for attempt in range(attempts):
        try:
            create()
            return
        except psycopg2.errors.ObjectInUse:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def admins(settings: Any) -> dict[str, SqlAdmin]:
    """The shared servers the operator configured, by engine."""
    found: dict[str, SqlAdmin] = {}
    if settings.postgres_admin_url:
        found["postgres"] = PostgresAdmin(settings.postgres_admin_url, settings.postgres_app_address)
    if settings.mysql_admin_url:
        found["mysql"] = MysqlAdmin(settings.mysql_admin_url, settings.mysql_app_address)
    return found
