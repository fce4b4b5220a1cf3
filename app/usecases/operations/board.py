"""What the dashboard's pages show: the cards of the previews a user may read, one preview's
history, and the stats. Read from the one read model (app/usecases/operations/views.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app.domain import costs, gitea_links
from app.domain.states import PreviewState
from app.models import Deployment, Event, Preview, PreviewUsage, Repository, WebhookDelivery
from app.settings import Settings
from app.usecases.deploy import budgets, usage
from app.usecases.operations import previews
from app.usecases.operations.views import PreviewView, deliveries_of, delivery_summary, views

# A card in these states polls no more.
FINAL_STATES = (
    PreviewState.READY,
    PreviewState.SLEEPING,
    PreviewState.FAILED,
    PreviewState.DELETED,
    PreviewState.PENDING_APPROVAL,
)


# The stats page's spend chart: this many days back, today included.
SPEND_DAYS = 30


def _age(now: datetime, then: datetime) -> str:
    seconds = int((now - then).total_seconds())
    if seconds < 3600:
        return f"{max(seconds // 60, 0)} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def cards(settings: Settings, shown: list[Preview], now: datetime) -> list[dict[str, Any]]:
    spent = usage.cost_by_preview(settings, [p.id for p in shown], now)
    return [card(settings, one, now, spent.get(one.id, 0.0)) for one in views(shown)]


def card(settings: Settings, preview: PreviewView, now: datetime, cost: float | None = None) -> dict[str, Any]:
    """`cost`: what the preview spent so far, when the caller read it with others'."""
    if cost is None:
        cost = usage.cost_by_preview(settings, [preview.id], now).get(preview.id, 0.0)
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
        "cost": round(cost, 4),
        "visited": _age(now, preview.last_visit_at) if preview.last_visit_at else None,
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
    """Active previews of the user's repositories by age bucket and by repository, what they
    cost an hour now, and each repository's spend: this month against its budget, and per day."""
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
    repositories = list(Repository.select().where(Repository.full_name.in_(readable or [""])))
    ids = [repository.id for repository in repositories]
    this_month = usage.spent_by_repository(settings, costs.month_start(now), now, ids)
    first_day, daily = usage.daily_by_repository(settings, ids, SPEND_DAYS, now)
    spend = [
        {
            "repository": repository.full_name,
            "month": round(this_month.get(repository.id, 0.0), 4),
            "budget": budgets.budget_of(settings, repository),
            "days": daily[repository.id],
            "total": round(sum(daily[repository.id]), 4),
        }
        for repository in sorted(repositories, key=lambda r: r.full_name)
    ]
    return {
        "active": len(active),
        "by_age": by_age,
        "by_repository": by_repository,
        "currency": settings.cost_currency,
        "per_hour": round(usage.open_cost(settings, now, PreviewUsage.repository.in_(ids)).per_hour, 4),
        "month": round(sum(this_month.values()), 4),
        "spend": spend,
        "first_day": first_day,
        "days": SPEND_DAYS,
    }


def spend_chart(spend: list[dict[str, Any]], first_day: datetime, width: int = 360, height: int = 40) -> dict[str, Any]:
    """An inline SVG's geometry: per repository a caption and one column per day, all scaled to
    the dearest day of any repository (so two repositories' columns compare)."""
    top = max((day for one in spend for day in one["days"]), default=0.0) or 1.0
    row = height + 30
    rows = []
    for index, one in enumerate(spend):
        count = len(one["days"]) or 1
        step = width / count
        columns = [
            {
                "x": round(day * step, 1),
                "height": round(height * value / top, 1),
                "value": value,
                "date": (first_day + timedelta(days=day)).strftime("%Y-%m-%d"),
            }
            for day, value in enumerate(one["days"])
        ]
        rows.append({**one, "y": index * row, "columns": columns, "column_width": max(round(step - 1, 1), 1)})
    return {"rows": rows, "height": max(len(rows) * row, row), "bar": height, "width": width}


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
