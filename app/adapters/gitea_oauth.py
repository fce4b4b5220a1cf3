"""Gitea as the OAuth2 provider of preview sign-in: the code exchange, and what a signed-in
user's own token says (who they are, whether they can read a repository).

Errors become `GiteaError` (app.adapters.gitea), like every other Gitea call.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import requests

from app.adapters.gitea import GiteaError

# Least privilege: the token can read repositories and the user, nothing else (Gitea >= 1.22).
SCOPES = "read:user read:repository"


class GiteaOAuth:
    def __init__(
        self, base_url: str, client_id: str, client_secret: str, redirect_uri: str, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id, self.client_secret, self.redirect_uri = client_id, client_secret, redirect_uri
        self.timeout = timeout
        self.session = requests.Session()

    def authorize_url(self, state: str) -> str:
        query = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "state": state,
            "scope": SCOPES,
        }
        return f"{self.base_url}/login/oauth/authorize?{urlencode(query)}"

    def _call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise GiteaError(f"{method} {url.split('?')[0]}: {error.__class__.__name__}") from error

    def exchange(self, code: str) -> tuple[str, int]:
        """The access token for an authorization code, and its lifetime in seconds."""
        body = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "code": code,
            "grant_type": "authorization_code",
            "redirect_uri": self.redirect_uri,
        }
        response = self._call("POST", f"{self.base_url}/login/oauth/access_token", json=body)
        try:
            answer = response.json()
            return str(answer["access_token"]), int(answer.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise GiteaError(f"the code exchange failed ({response.status_code})", response.status_code) from None

    def _as_user(self, token: str, path: str) -> requests.Response:
        return self._call("GET", f"{self.base_url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"})

    def login(self, token: str) -> str:
        response = self._as_user(token, "/user")
        if response.status_code != 200:
            raise GiteaError(f"GET /user with the user's token: {response.status_code}", response.status_code)
        return str(response.json()["login"])

    def permissions(self, token: str, repository: str) -> dict[str, bool]:
        """What the token's user may do in `owner/name` (pull, push, admin); all False when Gitea
        does not show them the repository."""
        owner, _, name = repository.partition("/")
        response = self._as_user(token, f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}")
        if response.status_code in (401, 403, 404):
            return {"pull": False, "push": False, "admin": False}
        if response.status_code != 200:
            raise GiteaError(f"GET repository {repository}: {response.status_code}", response.status_code)
        found = response.json().get("permissions") or {}
        return {key: bool(found.get(key)) for key in ("pull", "push", "admin")}

    def can_read(self, token: str, repository: str) -> bool:
        """Whether the token's user can read `owner/name`: Gitea shows it to them (404 otherwise)."""
        allowed = self.permissions(token, repository)
        return allowed["pull"] or allowed["admin"]
