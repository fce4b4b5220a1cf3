"""A real Gitea on loopback, with SQLite, an admin user and tokens, in a temporary folder.

Built by tests/tools/build.sh from its Go module. Used by the `gitea` fixtures
and by `make run`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.testbed.kube.controlplane import binary, tools_bin
from tests.testbed.servers import die_with_parent, free_port, stop_process, wait_for_port

ADMIN = "ci-admin"
BOT = "preview-bot"
# What the service's token needs: statuses and hooks, PR comments, its own login.
BOT_SCOPES = "write:repository,write:issue,read:user"

APP_INI = """\
APP_NAME = preview-test
RUN_MODE = prod
# Tests and CI run as root; Gitea refuses that unless told so.
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true
WORK_PATH = {folder}

[database]
DB_TYPE = sqlite3
PATH = {folder}/data/gitea.db

[repository]
ROOT = {folder}/repositories

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {port}
ROOT_URL = http://127.0.0.1:{port}/
DOMAIN = 127.0.0.1
DISABLE_SSH = true
OFFLINE_MODE = true
APP_DATA_PATH = {folder}/data
STATIC_ROOT_PATH = {static}
LFS_START_SERVER = false

[security]
INSTALL_LOCK = true
SECRET_KEY = {secret_key}
PASSWORD_HASH_ALGO = pbkdf2_hi

[service]
DISABLE_REGISTRATION = true
REQUIRE_SIGNIN_VIEW = false

[webhook]
ALLOWED_HOST_LIST = loopback
DELIVER_TIMEOUT = 5

[mailer]
ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[queue]
TYPE = channel

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[log]
MODE = file
LEVEL = Info
ROOT_PATH = {folder}/log

[cron]
ENABLED = false

[actions]
ENABLED = false
"""


@dataclass
class GiteaServer:
    folder: Path
    port: int
    process: subprocess.Popen
    admin_password: str
    admin_token: str = ""
    bot_token: str = ""
    _session: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def gitea(self, *args: str) -> str:
        """Run the gitea CLI; returns its last line of output (as root it prints a warning first)."""
        result = subprocess.run(
            [binary("gitea"), "--work-path", str(self.folder), "--config", str(self.folder / "app.ini"), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = result.stdout.strip().splitlines()
        return lines[-1].strip() if lines else ""

    def api(
        self,
        method: str,
        path: str,
        token: str | None = None,
        expect: tuple[int, ...] = (200, 201, 204),
        sudo: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call the API as the admin, or as the user `sudo` (an admin token may act for anyone)."""
        headers = {"Authorization": f"token {token or self.admin_token}"}
        if sudo:
            headers["Sudo"] = sudo
        response = self._session.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=30, **kwargs)
        if response.status_code not in expect:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content and "json" in response.headers.get("content-type", "") else None

    def git_url(self, repository: str, user: str = ADMIN, password: str | None = None) -> str:
        """A clone URL with a user's credentials (the admin's by default), for test pushes only."""
        return f"http://{user}:{password or self.admin_password}@127.0.0.1:{self.port}/{repository}.git"

    def token_for(self, login: str, scopes: str) -> str:
        """A new access token of `login` with only `scopes` (e.g. "read:repository")."""
        name = f"t{secrets.token_hex(4)}"
        return self.gitea(
            "admin",
            "user",
            "generate-access-token",
            "--username",
            login,
            "--token-name",
            name,
            "--scopes",
            scopes,
            "--raw",
        )

    def create_user(self, login: str) -> str:
        """A plain user (no access to anything yet); returns its password."""
        password = secrets.token_urlsafe(16)
        self.api(
            "POST",
            "/admin/users",
            json={
                "username": login,
                "password": password,
                "email": f"{login}@example.test",
                "must_change_password": False,
            },
        )
        return password

    def log_tail(self, lines: int = 40) -> str:
        log = self.folder / "log" / "gitea.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def _static_root() -> Path:
    static = tools_bin() / "gitea-static"
    if not static.exists():
        raise FileNotFoundError(f"{static} is missing: run tests/tools/build.sh gitea")
    return static.resolve()


@contextlib.contextmanager
def gitea_server() -> Iterator[GiteaServer]:
    folder = Path(tempfile.mkdtemp(prefix="preview-gitea-"))
    port = free_port()
    (folder / "app.ini").write_text(
        APP_INI.format(folder=folder, port=port, static=_static_root(), secret_key=secrets.token_hex(32))
    )
    environment = dict(os.environ, GITEA_WORK_DIR=str(folder), HOME=str(folder))
    process = None
    try:
        subprocess.run(
            [binary("gitea"), "--work-path", str(folder), "--config", str(folder / "app.ini"), "migrate"],
            check=True,
            capture_output=True,
            timeout=180,
            env=environment,
        )
        with open(folder / "stdout.log", "wb") as out:
            process = subprocess.Popen(
                [binary("gitea"), "--work-path", str(folder), "--config", str(folder / "app.ini"), "web"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,  # stopped by whoever started it, after the service that uses it
                preexec_fn=die_with_parent,
            )
        server = GiteaServer(folder, port, process, admin_password=secrets.token_urlsafe(16))
        wait_for_port(port, process, timeout=120)
        _wait_healthy(server)
        server.gitea(
            "admin",
            "user",
            "create",
            "--username",
            ADMIN,
            "--password",
            server.admin_password,
            "--email",
            "ci@example.test",
            "--admin",
            "--must-change-password=false",
        )
        server.admin_token = server.gitea(
            "admin",
            "user",
            "generate-access-token",
            "--username",
            ADMIN,
            "--token-name",
            "fixture",
            "--scopes",
            "all",
            "--raw",
        )
        server.gitea(
            "admin",
            "user",
            "create",
            "--username",
            BOT,
            "--password",
            secrets.token_urlsafe(16),
            "--email",
            "bot@example.test",
            "--must-change-password=false",
        )
        server.bot_token = server.gitea(
            "admin",
            "user",
            "generate-access-token",
            "--username",
            BOT,
            "--token-name",
            "previews",
            "--scopes",
            BOT_SCOPES,
            "--raw",
        )
        yield server
    except BaseException:
        if process is not None:
            log = folder / "stdout.log"
            print(log.read_text(errors="replace")[-3000:] if log.exists() else "")
        raise
    finally:
        if process is not None:
            stop_process(process)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_healthy(server: GiteaServer, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.url}/api/healthz", timeout=2).ok:
                return
        time.sleep(0.2)
    raise TimeoutError(f"Gitea did not become healthy:\n{server.log_tail()}")
