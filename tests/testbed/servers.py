"""Start real Redis and PostgreSQL servers on free loopback ports, in temporary folders.

Used by the pytest fixtures and by `make run`: nothing depends on a server
started by hand.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: the child is killed when the process that started it dies, so none is left behind."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def quiet_request_log() -> None:
    """werkzeug's request log names every query string: an OAuth2 callback's `code` and `state`
    would reach a failing test's output."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def until_interrupted(check_alive: Callable[[], None]) -> None:
    """For a test bed part run by hand: wait for Ctrl-C or SIGTERM, checking every second
    that its processes still run (check_alive raises when one has died)."""
    stop: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    try:
        while not stop:
            check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{process.args[0]} did not listen on port {port} within {timeout} s")


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class RedisServer:
    """Redis with a password, as the README asks of an installation: whoever writes to it
    decides what the workers do."""

    port: int
    process: subprocess.Popen
    folder: str
    password: str

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.process)

    def start(self) -> None:
        """Start it again on the same port (after `stop`)."""
        self.process = _spawn_redis(self.port, self.folder, self.password)
        wait_for_port(self.port, self.process)


def _spawn_redis(port: int, folder: str, password: str) -> subprocess.Popen:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    return subprocess.Popen(
        [
            binary,
            "--requirepass",
            password,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # a terminal's Ctrl-C is for whoever started it, who stops it last
        preexec_fn=die_with_parent,
    )


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    folder = tempfile.mkdtemp(prefix="preview-redis-")
    port, password = free_port(), secrets.token_hex(16)
    server = RedisServer(port, _spawn_redis(port, folder, password), folder, password)
    try:
        wait_for_port(port, server.process)
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: install the postgresql package")
    return found[-1]


def _as_postgres_user() -> list[str]:
    # PostgreSQL refuses to run as root; the Debian package creates a `postgres` user.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class PostgresServer:
    port: int
    process: subprocess.Popen

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg2

        connection = psycopg2.connect(self.url())
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)


def _wait_accepting_queries(server: PostgresServer, timeout: float = 60.0) -> None:
    """The port opens before recovery ends ("the database system is starting up"): wait for a real login."""
    import psycopg2

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg2.connect(server.url(), connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline or server.process.poll() is not None:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    folder = tempfile.mkdtemp(prefix="preview-pg-")
    data = os.path.join(folder, "data")
    sudo = _as_postgres_user()
    if sudo:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    port = free_port()
    process = None
    try:
        subprocess.run(
            [*sudo, _postgres_bin("initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        process = subprocess.Popen(
            [
                *sudo,
                _postgres_bin("postgres"),
                "-D",
                data,
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                folder,
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "synchronous_commit=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        wait_for_port(port, process)
        server = PostgresServer(port, process)
        _wait_accepting_queries(server)
        yield server
    finally:
        if process is not None:
            stop_process(process)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class MariaDBServer:
    port: int
    process: subprocess.Popen
    socket_path: str
    password: str

    @property
    def admin_url(self) -> str:
        return f"mysql://admin:{self.password}@127.0.0.1:{self.port}/"


def _mariadb_as_root(socket_path: str) -> Any:
    import pymysql

    return pymysql.connect(unix_socket=socket_path, user="root", autocommit=True, connect_timeout=2)


@contextlib.contextmanager
def mariadb_server() -> Iterator[MariaDBServer]:
    """MariaDB (Debian's package) in a temporary directory, with an `admin` user that may
    create databases and users, as an operator's shared server would have."""
    folder = tempfile.mkdtemp(prefix="preview-mariadb-")
    data, socket_path = os.path.join(folder, "data"), os.path.join(folder, "mysqld.sock")
    user = "mysql" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        owner = pwd.getpwnam("mysql")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    port = free_port()
    process = None
    try:
        subprocess.run(
            [
                "mariadb-install-db",
                f"--datadir={data}",
                f"--user={user}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={data}",
                f"--user={user}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                f"--socket={socket_path}",
                f"--pid-file={folder}/mysqld.pid",
                "--skip-name-resolve",
                "--innodb-flush-log-at-trx-commit=0",
                "--skip-log-bin",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        wait_for_port(port, process)
        password = "admin-" + os.urandom(12).hex()
        connection = _mariadb_as_root(socket_path)
        with connection.cursor() as cursor:
            # No anonymous users (they would win over 'name'@'%' for local logins).
            cursor.execute("DELETE FROM mysql.global_priv WHERE user = ''")
            cursor.execute("FLUSH PRIVILEGES")
            cursor.execute("CREATE USER 'admin'@'%%' IDENTIFIED BY %s", (password,))
            cursor.execute("GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%' WITH GRANT OPTION")
        connection.close()
        yield MariaDBServer(port, process, socket_path, password)
    finally:
        if process is not None:
            stop_process(process)
        shutil.rmtree(folder, ignore_errors=True)
