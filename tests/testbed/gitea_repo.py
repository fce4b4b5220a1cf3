"""A repository in the test Gitea holding a small app with a Dockerfile, driven with real git."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.testbed.gitea_server import ADMIN, BOT, GiteaServer

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
            (self.workdir / name).parent.mkdir(parents=True, exist_ok=True)
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

    def fork_pr(self, user: str, password: str, branch: str, files: dict[str, str]) -> tuple[int, str]:
        """`user` forks the repository, pushes `files` on `branch` of the fork and opens a PR
        from it; returns the PR number and the commit."""
        fork = self.gitea.api("POST", f"/repos/{self.full_name}/forks", sudo=user, json={}, expect=(202,))["full_name"]
        sha = self.push_to_fork(fork, user, password, branch, files)
        title = f"Change from {user}"
        pull = {"head": f"{user}:{branch}", "base": "main", "title": title}
        return self.gitea.api("POST", f"/repos/{self.full_name}/pulls", sudo=user, json=pull)["number"], sha

    def push_to_fork(self, fork: str, user: str, password: str, branch: str, files: dict[str, str]) -> str:
        branches = self.git("branch", "--list", branch)
        self.git("checkout", branch) if branches else self.git("checkout", "-b", branch, "main")
        for name, content in files.items():
            (self.workdir / name).parent.mkdir(parents=True, exist_ok=True)
            (self.workdir / name).write_text(content)
        self.git("add", "-A")
        self.git("commit", "-m", f"{user} changes {', '.join(files)}")
        self.git("push", self.gitea.git_url(fork, user, password), f"HEAD:refs/heads/{branch}")
        return self.git("rev-parse", "HEAD")

    def agit_pr(self, user: str, password: str, files: dict[str, str], topic: str) -> tuple[int, str]:
        """`user` opens a PR with Gitea's AGit flow (`git push origin HEAD:refs/for/main -o topic=...`),
        which needs only read access; returns the PR number and the commit."""
        self.git("checkout", "-B", f"agit/{topic}", "main")
        for name, content in files.items():
            (self.workdir / name).write_text(content)
        self.git("add", "-A")
        self.git("commit", "-m", f"{user} proposes {', '.join(files)}")
        url = self.gitea.git_url(self.full_name, user, password)
        self.git("push", url, "HEAD:refs/for/main", "-o", f"topic={topic}")
        sha = self.git("rev-parse", "HEAD")
        pulls = self.gitea.api("GET", f"/repos/{self.full_name}/pulls?state=open&limit=50")
        return next(pull["number"] for pull in pulls if pull["head"]["sha"] == sha), sha

    def add_label(self, number: int, name: str) -> None:
        """Put the label `name` on the PR as the admin (creating the label when the repository lacks it)."""
        labels = {label["name"]: label["id"] for label in self.gitea.api("GET", f"/repos/{self.full_name}/labels")}
        if name not in labels:
            created = self.gitea.api("POST", f"/repos/{self.full_name}/labels", json={"name": name, "color": "#2e7d32"})
            labels[name] = created["id"]
        self.gitea.api("POST", f"/repos/{self.full_name}/issues/{number}/labels", json={"labels": [labels[name]]})

    def labels_on(self, number: int) -> list[str]:
        return [label["name"] for label in self.gitea.api("GET", f"/repos/{self.full_name}/issues/{number}/labels")]

    def comment(self, number: int, body: str, user: str | None = None) -> None:
        self.gitea.api("POST", f"/repos/{self.full_name}/issues/{number}/comments", sudo=user, json={"body": body})

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
    gitea: GiteaServer,
    name: str,
    workdir: Path,
    webhook_url: str | None = None,
    secret: str | None = None,
    files: dict[str, str] | None = None,
) -> Repo:
    """A repository with the app (APP_FILES, or `files`) on `main`, the bot as a writer, and
    (optionally) our webhook."""
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
    repo.commit("main", files or APP_FILES, "The app")
    return repo
