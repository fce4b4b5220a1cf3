"""What the dashboard's pages show: the cards of the previews a user may read, one preview's
history, and the stats. Read from the one read model (app/usecases/operations/views.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.domain import gitea_links
from app.domain.states import PreviewState
from app.models import Deployment, Event, Preview, Repository, WebhookDelivery
from app.settings import Settings
from app.usecases.operations import previews
from app.usecases.operations.views import PreviewView, deliveries_of, delivery_summary, views

# A card in these states polls no more.
FINAL_STATES = (PreviewState.READY, PreviewState.FAILED, PreviewState.DELETED, PreviewState.PENDING_APPROVAL)


def cost_so_far(settings: Settings, preview: Preview | PreviewView, now: datetime) -> float:
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


def cards(settings: Settings, shown: list[Preview], now: datetime) -> list[dict[str, Any]]:
    return [card(settings, one, now) for one in views(shown)]


def card(settings: Settings, preview: PreviewView, now: datetime) -> dict[str, Any]:
    gitea_url, repository = settings.gitea_url, preview.repository
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
        "progress": preview.progress,
        "live": preview.state not in FINAL_STATES,
        "age": _age(now, preview.created_at),
        "expires_at": preview.expires_at.strftime("%Y-%m-%d %H:%M") if preview.expires_at else None,
        "pinned": preview.pinned,
        "cost": cost_so_far(settings, preview, now),
        "url": preview.live_url,
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
    return cards(settings, list(query.order_by(Preview.id.desc()).limit(200)), now)


def history(preview: Preview) -> dict[str, Any]:
    return {
        "deployments": list(preview.deployments.order_by(Deployment.id.desc())),
        "events": list(preview.events.order_by(Event.id.desc()).limit(200)),
        "deliveries": [delivery_summary(d) for d in deliveries_of(preview)],
    }


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
