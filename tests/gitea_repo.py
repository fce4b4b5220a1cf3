"""A repository in the test Gitea holding a small app with a Dockerfile, driven with real git."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.gitea_server import ADMIN, BOT, GiteaServer

APP_FILES = {
    "Dockerfile": 'FROM python:3.12-slim\nCOPY app.py /app.py\nEXPOSE 8080\nCMD ["python", "/app.py"]\n',
    "app.py": (
        "import http.server, os\n"
        "class Hello(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "        self.wfile.write(os.environ.get('PREVIEW_URL', 'hello').encode())\n"
        "http.server.HTTPServer(('', 8080), Hello).serve_forever()\n"
    ),
}


@dataclass
class Repo:
    gitea: GiteaServer
    full_name: str
    workdir: Path

    def git(self, *args: str) -> str:
        env = {
            "HOME": str(self.workdir.parent),
            "GIT_AUTHOR_NAME": "CI",
            "GIT_AUTHOR_EMAIL": "ci@example.test",
            "GIT_COMMITTER_NAME": "CI",
            "GIT_COMMITTER_EMAIL": "ci@example.test",
            "PATH": "/usr/bin:/bin",
        }
        return subprocess.run(
            ["git", *args], cwd=self.workdir, env=env, check=True, capture_output=True, text=True, timeout=60
        ).stdout.strip()

    def commit(self, branch: str, files: dict[str, str], message: str) -> str:
        """Commit `files` on `branch` (created from the current branch if new) and push it; returns the sha."""
        branches = self.git("branch", "--list", branch)
        self.git("checkout", branch) if branches else self.git("checkout", "-b", branch)
        for name, content in files.items():
            (self.workdir / name).write_text(content)
        self.git("add", "-A")
        self.git("commit", "-m", message)
        self.git("push", "origin", f"HEAD:refs/heads/{branch}")
        return self.git("rev-parse", "HEAD")

    def delete_branch(self, branch: str) -> None:
        self.git("checkout", "main")
        self.git("push", "origin", f":refs/heads/{branch}")

    def open_pr(self, head: str, title: str = "Change") -> int:
        return self.gitea.api(
            "POST", f"/repos/{self.full_name}/pulls", json={"head": head, "base": "main", "title": title}
        )["number"]

    def pr(self, number: int) -> dict:
        return self.gitea.api("GET", f"/repos/{self.full_name}/pulls/{number}")

    def close_pr(self, number: int) -> None:
        self.gitea.api("PATCH", f"/repos/{self.full_name}/pulls/{number}", json={"state": "closed"})

    def reopen_pr(self, number: int) -> None:
        self.gitea.api("PATCH", f"/repos/{self.full_name}/pulls/{number}", json={"state": "open"})

    def merge_pr(self, number: int) -> None:
        self.gitea.api("POST", f"/repos/{self.full_name}/pulls/{number}/merge", json={"Do": "merge"})

    def statuses(self, sha: str) -> list[dict]:
        return self.gitea.api("GET", f"/repos/{self.full_name}/statuses/{sha}")

    def statuses_in_order(self, context: str = "preview") -> list[str]:
        """The commits of every status in `context`, in the order Gitea stored them.

        The API cannot say it: a status's `id` there is its index among its commit's statuses.
        """
        repo_id = self.gitea.api("GET", f"/repos/{self.full_name}")["id"]
        uri = f"file:{self.gitea.folder / 'data' / 'gitea.db'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            found = db.execute(
                "SELECT sha FROM commit_status WHERE repo_id = ? AND context = ? ORDER BY id", (repo_id, context)
            )
            return [sha for (sha,) in found]

    def latest_status(self, sha: str, context: str = "preview") -> dict | None:
        combined = self.gitea.api("GET", f"/repos/{self.full_name}/commits/{sha}/status")
        return next((s for s in combined.get("statuses") or [] if s["context"] == context), None)

    def bot_comments(self, number: int) -> list[dict]:
        comments = self.gitea.api("GET", f"/repos/{self.full_name}/issues/{number}/comments")
        return [c for c in comments if c["user"]["login"] == BOT]


def create_repository(
    gitea: GiteaServer, name: str, workdir: Path, webhook_url: str | None = None, secret: str | None = None
) -> Repo:
    """A repository with the app on `main`, the bot as a writer, and (optionally) our webhook."""
    gitea.api("POST", "/user/repos", json={"name": name, "private": False, "default_branch": "main"})
    full_name = f"{ADMIN}/{name}"
    gitea.api("PUT", f"/repos/{full_name}/collaborators/{BOT}", json={"permission": "write"})
    if webhook_url:
        gitea.api(
            "POST",
            f"/repos/{full_name}/hooks",
            json={
                "type": "gitea",
                "active": True,
                "events": ["push", "pull_request", "delete"],
                "config": {"url": webhook_url, "content_type": "json", "secret": secret},
            },
        )
    workdir.mkdir(parents=True)
    repo = Repo(gitea, full_name, workdir)
    repo.git("init", "-b", "main")
    repo.git("remote", "add", "origin", gitea.git_url(full_name))
    repo.commit("main", APP_FILES, "The app")
    return repo
