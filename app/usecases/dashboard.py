"""The dashboard's users and what they see: sign-in with Gitea (the same OAuth2 application
as preview sign-in), sessions kept server-side in Redis, and each user's view limited to the
repositories their own Gitea token can read; actions need write access there."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.domain import gitea_links, redirects
from app.domain.sealing import Sealer
from app.domain.states import PreviewState
from app.models import Deployment, Event, Preview, Repository, WebhookDelivery
from app.settings import Settings
from app.usecases import previews
from app.usecases.gitea_signin import GiteaSignin
from app.usecases.ports import SessionStore, SignInProvider

SESSION_COOKIE = "dashboard_session"
NONCE_COOKIE = "dashboard_signin"
SESSION_SECONDS = 8 * 3600
FINAL_STATES = (PreviewState.READY, PreviewState.FAILED, PreviewState.DELETED, PreviewState.PENDING_APPROVAL)


@dataclass(frozen=True)
class User:
    sid: str
    login: str
    token: str
    csrf: str  # the form token of this session


class Dashboard:
    def __init__(self, settings: Settings, store: SessionStore, oauth: SignInProvider) -> None:
        assert settings.session_secret
        self.settings, self.store, self.oauth = settings, store, oauth
        self.signer = URLSafeTimedSerializer(settings.session_secret, salt="dashboard")
        self.signin = GiteaSignin(oauth, self.signer, "dashboard")
        self.sealer = Sealer(settings.session_secret, "dashboard")

    # --- sign-in ------------------------------------------------------------------------

    def start(self, next_path: str) -> tuple[str, str]:
        # Only a path of ours, as a browser reads it ("//host", "/\\host", "/\t/host" are other sites).
        return self.signin.start(redirects.local_path(next_path) or "/")

    def finish(self, code: str, state: str, nonce: str | None) -> tuple[str, str]:
        """The new session's cookie value and where to go. ValueError for a state this browser did not start."""
        signed_in = self.signin.finish(code, state, nonce)
        sid = secrets.token_urlsafe(24)
        record = {"login": signed_in.login, "token": signed_in.token, "csrf": secrets.token_urlsafe(24)}
        self.store.set(
            f"dashboard:session:{sid}", self.sealer.seal(record), ex=min(signed_in.lifetime, SESSION_SECONDS)
        )
        return self.signer.dumps(sid), redirects.local_path(signed_in.back_to) or "/"

    def user(self, cookie: str | None) -> User | None:
        if not cookie:
            return None
        try:
            sid = self.signer.loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:
            return None
        found = self.sealer.open(self.store.get(f"dashboard:session:{sid}"))
        if found is None:
            return None
        return User(str(sid), found["login"], found["token"], found["csrf"])

    def sign_out(self, user: User) -> None:
        self.store.delete(f"dashboard:session:{user.sid}")

    # --- permissions (the user's own token, cached briefly) ------------------------------

    def _permissions(self, user: User, repository: str) -> dict[str, bool]:
        key = f"dashboard:perm:{user.sid}:{repository.lower()}"
        cached = self.store.get(key)
        if cached is not None:
            return dict(json.loads(cached))
        found = self.oauth.permissions(user.token, repository)
        self.store.set(key, json.dumps(found), ex=int(self.settings.access_cache_ttl.total_seconds()))
        return found

    def readable(self, user: User) -> list[str]:
        names = [r.full_name for r in Repository.select(Repository.full_name).order_by(Repository.full_name)]
        return [name for name in names if self._permissions(user, name)["pull"]]

    def can_write(self, user: User, repository: str) -> bool:
        allowed = self._permissions(user, repository)
        return allowed["push"] or allowed["admin"]

    def visible(self, user: User, preview_id: int) -> Preview:
        preview = previews.get_preview(preview_id)
        if not self._permissions(user, preview.repository.full_name)["pull"]:
            raise previews.NotFound(f"preview {preview_id} not found")
        return preview


# --- what the pages show -------------------------------------------------------------------


def progress_of(preview: Preview) -> int:
    if preview.state == PreviewState.READY:
        return 100
    last = (
        Event.select(Event.progress)
        .where((Event.preview == preview) & Event.progress.is_null(False))
        .order_by(Event.id.desc())
        .first()
    )
    return int(last.progress) if last else 0


def cost_so_far(settings: Settings, preview: Preview, now: datetime) -> float:
    """Requested CPU and memory of the app container, priced per hour since it was created."""
    if preview.state in (PreviewState.DELETED, PreviewState.QUEUED, PreviewState.PENDING_APPROVAL):
        return 0.0
    hours = max(0.0, (now - preview.created_at).total_seconds() / 3600)
    return round(previews.price_per_preview_hour(settings) * hours, 4)


def _age(now: datetime, then: datetime) -> str:
    seconds = int((now - then).total_seconds())
    if seconds < 3600:
        return f"{max(seconds // 60, 0)} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def card(settings: Settings, preview: Preview, now: datetime, gitea_url: str | None) -> dict[str, Any]:
    repository = preview.repository.full_name
    target_url = (
        gitea_links.pull_request_url(gitea_url, repository, preview.pr_number)
        if preview.pr_number is not None
        else gitea_links.branch_url(gitea_url, repository, preview.branch)
    )
    return {
        "id": preview.id,
        "repository": repository,
        "repository_url": gitea_links.repository_url(gitea_url, repository),
        "pr_number": preview.pr_number,
        "branch": preview.branch,
        "target_url": target_url,
        "commit": preview.head_sha[:12],
        "commit_url": gitea_links.commit_url(gitea_url, repository, preview.head_sha),
        "state": preview.state,
        "progress": progress_of(preview),
        "live": preview.state not in FINAL_STATES,
        "age": _age(now, preview.created_at),
        "expires_at": preview.expires_at.strftime("%Y-%m-%d %H:%M") if preview.expires_at else None,
        "pinned": preview.pinned,
        "cost": cost_so_far(settings, preview, now),
        "url": preview.url if preview.state == PreviewState.READY else None,
        "password_access": settings.access == "basic",
    }


def list_cards(
    settings: Settings,
    readable: list[str],
    now: datetime,
    repository: str | None = None,
    state: str | None = None,
    search: str | None = None,
    mine: str | None = None,
) -> list[dict[str, Any]]:
    shown = [name for name in readable if repository in (None, "", name)]
    if not shown:
        return []
    query = Preview.select(Preview, Repository).join(Repository).where(Repository.full_name.in_(shown))
    query = query.where(Preview.state == state) if state else query.where(Preview.state != PreviewState.DELETED)
    if search:
        text = search.strip().lstrip("#")
        by_branch = Preview.branch.contains(text)
        query = query.where(by_branch | (Preview.pr_number == int(text)) if text.isdigit() else by_branch)
    if mine:
        mine_keys = WebhookDelivery.select(WebhookDelivery.target_key).where(WebhookDelivery.actor == mine)
        query = query.where(Preview.target_key.in_(mine_keys))
    return [card(settings, p, now, settings.gitea_url) for p in query.order_by(Preview.id.desc()).limit(200)]


def history(preview: Preview) -> dict[str, Any]:
    return {
        "deployments": list(preview.deployments.order_by(Deployment.id.desc())),
        "events": list(preview.events.order_by(Event.id.desc()).limit(200)),
    }


def extend(settings: Settings, preview: Preview, by: timedelta, now: datetime) -> datetime | None:
    """Push the expiry back by `by`, never past PREVIEW_MAX_TTL from now; returns the new expiry.

    Compare-and-set on the expiry the caller read, and only while the preview is live: None
    when a deploy, a teardown or another click changed it meanwhile (nothing is overwritten)."""
    start = max(preview.expires_at or now, now)
    expires_at = min(start + by, now + settings.max_preview_ttl)
    read = Preview.expires_at.is_null() if preview.expires_at is None else Preview.expires_at == preview.expires_at
    changed = (
        Preview.update(expires_at=expires_at, updated_at=now)
        .where((Preview.id == preview.id) & read & Preview.state.in_(PreviewState.ACTIVE))
        .execute()
    )
    return expires_at if changed else None


def stats_for(settings: Settings, readable: list[str], now: datetime) -> dict[str, Any]:
    """Active previews of the user's repositories by age bucket and by repository, and their cost."""
    active = list(
        Preview.select(Preview, Repository)
        .join(Repository)
        .where(Repository.full_name.in_(readable or [""]) & Preview.state.in_(PreviewState.ACTIVE))
    )
    by_age = {name: 0 for name, _ in previews.AGE_BUCKETS}
    by_repository = {name: 0 for name in readable}
    for preview in active:
        age = now - preview.created_at
        by_age[next(name for name, limit in previews.AGE_BUCKETS if limit is None or age < limit)] += 1
        by_repository[preview.repository.full_name] += 1
    running = [p for p in active if p.state in (PreviewState.READY, PreviewState.FAILED, PreviewState.DEPLOYING)]
    return {
        "active": len(active),
        "by_age": by_age,
        "by_repository": by_repository,
        "currency": settings.cost_currency,
        "per_hour": round(previews.price_per_preview_hour(settings) * len(running), 4),
        "so_far": round(sum(cost_so_far(settings, p, now) for p in running), 2),
    }


def bars(counts: dict[str, int], width: int = 360, bar: int = 18) -> dict[str, Any]:
    """An inline SVG bar chart's geometry: per label a caption line and a bar under it, widths
    scaled to the largest (so long repository names never run into the bars)."""
    top = max(counts.values(), default=0) or 1
    row = bar + 26
    rows = [
        {"label": label, "value": value, "y": index * row, "width": round(width * value / top)}
        for index, (label, value) in enumerate(counts.items())
    ]
    return {"rows": rows, "height": max(len(rows) * row, row), "bar": bar, "width": width}
