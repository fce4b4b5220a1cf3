"""The Gitea API adapter: commit statuses, the one PR comment, branch and PR lookups.

Every call has a timeout; network errors and error answers become `GiteaError`.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any
from urllib.parse import quote

import requests

from app.domain.git_refs import branch_name_problem
from app.usecases.ports import DESCRIPTION_MAX, STATUS_CONTEXT, GiteaError

__all__ = ["DESCRIPTION_MAX", "STATUS_CONTEXT", "Gitea", "GiteaError"]

log = logging.getLogger(__name__)

STATUS_STATES = frozenset({"pending", "success", "error", "failure", "warning"})


def _repo_path(repository: str) -> str:
    owner, name = repository.split("/", 1)
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def _field(answer: Any, name: str) -> Any:
    if not isinstance(answer, dict) or name not in answer:
        raise GiteaError(f"Gitea's answer has no {name!r}")
    return answer[name]


class Gitea:
    configured = True

    def __init__(
        self, base_url: str, token: str | None, timeout: float = 10.0, session: requests.Session | None = None
    ) -> None:
        self.api = base_url.rstrip("/") + "/api/v1"
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"token {token}"
        self._login: str | None = None

    def _request(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.api + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise GiteaError(f"{method} {path}: {error.__class__.__name__}") from error
        if response.status_code not in expect:
            try:
                message = response.json().get("message", "")
            except ValueError:
                message = response.text[:200]
            raise GiteaError(f"{method} {path}: {response.status_code} {message}".strip(), response.status_code)
        return response

    def _json(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        """The answer's JSON; an answer that is not JSON is a GiteaError like any other failure."""
        response = self._request(method, path, expect=expect, **kwargs)
        try:
            return response.json()
        except ValueError as error:
            raise GiteaError(f"{method} {path}: the answer is not JSON", response.status_code) from error

    def current_login(self) -> str:
        if self._login is None:
            self._login = str(_field(self._json("GET", "/user"), "login"))
        return self._login

    def set_status(
        self,
        repository: str,
        sha: str,
        state: str,
        target_url: str | None,
        description: str,
        context: str = STATUS_CONTEXT,
    ) -> dict[str, Any]:
        if state not in STATUS_STATES:
            raise ValueError(f"unknown commit status state {state!r}")
        body = {"state": state, "description": description[:DESCRIPTION_MAX], "context": context}
        if target_url:
            body["target_url"] = target_url
        return self._json("POST", f"{_repo_path(repository)}/statuses/{sha}", expect=(200, 201), json=body)

    def latest_status(self, repository: str, sha: str, context: str = STATUS_CONTEXT) -> dict[str, Any] | None:
        """The commit's newest status in `context` (state, description, target_url), if any."""
        combined = self._json_or_none(f"{_repo_path(repository)}/commits/{sha}/status") or {}
        for status in combined.get("statuses") or []:
            if isinstance(status, dict) and status.get("context") == context:
                return status
        return None

    def comments(self, repository: str, number: int, page_size: int = 50) -> list[dict[str, Any]]:
        """Every comment of the issue or PR, page by page (ours may be far down a long thread).
        Stops at a short page, or at one that brings nothing new (a server that does not page)."""
        found: dict[Any, dict[str, Any]] = {}
        for page in range(1, 101):
            path = f"{_repo_path(repository)}/issues/{number}/comments?page={page}&limit={page_size}"
            comments = self._json("GET", path)
            if not isinstance(comments, list):
                raise GiteaError(f"GET comments of {repository}#{number}: expected a list")
            new = {c.get("id"): c for c in comments if isinstance(c, dict) and c.get("id") not in found}
            found |= new
            if len(comments) < page_size or not new:
                break
        return list(found.values())

    def find_comment(self, repository: str, number: int, marker: str) -> dict[str, Any] | None:
        """Our comment on the PR: it carries `marker` and was written by the token's user."""
        login = self.current_login()
        for comment in self.comments(repository, number):
            if marker in (comment.get("body") or "") and (comment.get("user") or {}).get("login") == login:
                return comment
        return None

    def upsert_comment(self, repository: str, number: int, marker: str, body: str) -> int:
        """Edit our comment in place, or create it once; returns its id."""
        if marker not in body:
            raise ValueError("the comment body must carry its marker")
        existing = self.find_comment(repository, number, marker)
        if existing is not None:
            if existing.get("body") != body:
                self._request(
                    "PATCH", f"{_repo_path(repository)}/issues/comments/{existing['id']}", json={"body": body}
                )
            return int(existing["id"])
        created = self._json(
            "POST", f"{_repo_path(repository)}/issues/{number}/comments", expect=(201,), json={"body": body}
        )
        return int(_field(created, "id"))

    def add_comment_attachment(
        self, repository: str, comment_id: int, name: str, content: bytes, media_type: str = "image/png"
    ) -> dict[str, Any]:
        """Attach a file to a comment (ours); returns the attachment (id, browser_download_url)."""
        path = f"{_repo_path(repository)}/issues/comments/{int(comment_id)}/assets"
        files = {"attachment": (name, content, media_type)}
        attachment = self._json("POST", path, expect=(201,), params={"name": name}, files=files)
        return {
            "id": int(_field(attachment, "id")),
            "browser_download_url": str(_field(attachment, "browser_download_url")),
        }

    def delete_comment_attachment(self, repository: str, comment_id: int, attachment_id: int) -> None:
        """Remove an attachment of a comment; one already gone is fine."""
        path = f"{_repo_path(repository)}/issues/comments/{int(comment_id)}/assets/{int(attachment_id)}"
        self._request("DELETE", path, expect=(204, 404))

    def branch_head(self, repository: str, branch: str) -> str | None:
        """The head commit of `branch`, or None when there is no such branch."""
        if problem := branch_name_problem(branch):
            raise GiteaError(f"refusing to ask for branch {branch!r}: it {problem}")
        response = self._request(
            "GET", f"{_repo_path(repository)}/branches/{quote(branch, safe='/')}", expect=(200, 404)
        )
        if response.status_code == 404:
            return None
        try:
            return str(response.json()["commit"]["id"])
        except (ValueError, KeyError, TypeError) as error:
            raise GiteaError(f"GET branch {branch!r} of {repository}: unexpected answer") from error

    def pull_request(self, repository: str, number: int) -> dict[str, Any] | None:
        return self._json_or_none(f"{_repo_path(repository)}/pulls/{number}")

    def file_at(self, repository: str, path: str, ref: str) -> bytes | None:
        """The file at `path` in commit `ref` (contents API); None when the commit has no such file."""
        found = self._json_or_none(f"{_repo_path(repository)}/contents/{quote(path)}?ref={quote(ref, safe='')}")
        if found is None:
            return None
        if found.get("type") != "file":
            raise GiteaError(f"{path} at {ref[:12]} in {repository} is a {found.get('type')}, not a file")
        if found.get("encoding") != "base64" or not isinstance(found.get("content"), str):
            raise GiteaError(f"{path} at {ref[:12]} in {repository}: Gitea sent no base64 content")
        try:
            return base64.b64decode(found["content"], validate=False)
        except (binascii.Error, ValueError) as error:
            raise GiteaError(f"{path} at {ref[:12]} in {repository}: content is not base64") from error

    def permission(self, repository: str, login: str) -> str | None:
        """`login`'s access to the repository (none, read, write, admin, owner); None when
        this token may not ask (Gitea answers others' permissions to repository admins only)."""
        path = f"{_repo_path(repository)}/collaborators/{quote(login, safe='')}/permission"
        response = self._request("GET", path, expect=(200, 403, 404))
        if response.status_code == 403:
            return None
        if response.status_code == 404:
            return "none"  # no such user
        try:
            return str(response.json()["permission"])
        except (ValueError, KeyError, TypeError) as error:
            raise GiteaError(f"GET permission of {login} on {repository}: unexpected answer") from error

    def issue_labels(self, repository: str, number: int) -> list[dict[str, Any]]:
        found = self._json("GET", f"{_repo_path(repository)}/issues/{number}/labels")
        return [label for label in found if isinstance(label, dict)] if isinstance(found, list) else []

    def remove_label(self, repository: str, number: int, name: str) -> bool:
        """Take the label called `name` off the issue or PR; False when it was not on it."""
        for label in self.issue_labels(repository, number):
            if label.get("name") == name:
                path = f"{_repo_path(repository)}/issues/{number}/labels/{int(label['id'])}"
                self._request("DELETE", path, expect=(204, 404))
                return True
        return False

    def hooks(self, repository: str) -> list[dict[str, Any]]:
        found = self._json("GET", f"{_repo_path(repository)}/hooks")
        return [hook for hook in found if isinstance(hook, dict)] if isinstance(found, list) else []

    def save_hook(self, repository: str, url: str, secret: str, events: list[str], hook_id: int | None = None) -> int:
        """Create the repository's webhook to `url`, or update hook `hook_id`; returns its id."""
        config = {"url": url, "content_type": "json", "secret": secret}
        if hook_id is None:
            body = {"type": "gitea", "active": True, "events": events, "config": config}
            created = self._json("POST", f"{_repo_path(repository)}/hooks", expect=(201,), json=body)
        else:
            body = {"active": True, "events": events, "config": config}
            created = self._json("PATCH", f"{_repo_path(repository)}/hooks/{int(hook_id)}", json=body)
        return int(_field(created, "id"))

    def delete_hook(self, repository: str, hook_id: int) -> None:
        self._request("DELETE", f"{_repo_path(repository)}/hooks/{int(hook_id)}", expect=(204, 404))

    def repository(self, repository: str) -> dict[str, Any] | None:
        return self._json_or_none(_repo_path(repository))

    def repository_by_id(self, gitea_id: int) -> dict[str, Any] | None:
        """The repository with Gitea's id `gitea_id`, under whatever name it has now; None when gone."""
        return self._json_or_none(f"/repositories/{int(gitea_id)}")

    def _json_or_none(self, path: str) -> dict[str, Any] | None:
        """GET an object; None when Gitea says 404."""
        response = self._request("GET", path, expect=(200, 404))
        if response.status_code == 404:
            return None
        try:
            found = response.json()
        except ValueError as error:
            raise GiteaError(f"GET {path}: the answer is not JSON", response.status_code) from error
        if not isinstance(found, dict):
            raise GiteaError(f"GET {path}: expected an object")
        return found
