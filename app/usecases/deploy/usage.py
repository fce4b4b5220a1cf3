"""What previews held, and so spent: a stretch of use opens when a preview takes its slot
(it holds cluster resources from then on) and closes when it gives the slot back.

Costs are computed when read, from these stretches and the prices configured now."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from app.domain import costs
from app.models import Preview, PreviewUsage
from app.settings import Settings


@dataclass(frozen=True)
class Cost:
    so_far: float
    per_hour: float  # now: 0 when it holds nothing


def prices_of(settings: Settings) -> costs.Prices:
    return costs.Prices(settings.price_cpu_core_hour, settings.price_memory_gb_hour)


def start(preview: Preview, now: datetime) -> None:
    """The preview took its slot: its app container's requests count from now."""
    PreviewUsage.create(
        preview=preview.id,
        repository=preview.repository_id,
        cpu_cores=costs.APP_CORES,
        memory_gib=costs.APP_GIB,
        started_at=now,
    )


def stop(preview_ids: Iterable[int], now: datetime) -> None:
    """The previews gave their slots back: their open stretches end now. Only of those that
    hold no slot by now: one that took a slot again meanwhile spends on."""
    ids = list(preview_ids)
    if ids:
        slotless = Preview.select(Preview.id).where(Preview.id.in_(ids) & (Preview.holds_slot == False))  # noqa: E712
        PreviewUsage.update(ended_at=now).where(
            PreviewUsage.preview.in_(slotless) & PreviewUsage.ended_at.is_null()
        ).execute()


def settle(now: datetime, dry_run: bool = False) -> list[int]:
    """Make the stretches follow the slots, whatever process died between two writes: an open
    stretch of a preview that holds no slot ends when the preview last changed; a preview that
    holds a slot without an open stretch gets one from now. Returns the previews mended."""
    stray = list(
        PreviewUsage.select(PreviewUsage.id, Preview.id, Preview.updated_at)
        .join(Preview)
        .where(PreviewUsage.ended_at.is_null() & (Preview.holds_slot == False))  # noqa: E712
        .tuples()
    )
    spending = PreviewUsage.select(PreviewUsage.preview).where(PreviewUsage.ended_at.is_null())
    unaccounted = (Preview.holds_slot == True) & Preview.id.not_in(spending)  # noqa: E712
    missing = [preview_id for (preview_id,) in Preview.select(Preview.id).where(unaccounted).tuples()]
    if not dry_run:
        for usage_id, _, ended_at in stray:
            PreviewUsage.update(ended_at=ended_at).where(PreviewUsage.id == usage_id).execute()
        if missing:  # one statement, however many (an older release's rows, say)
            requests = (peewee.Value(costs.APP_CORES), peewee.Value(costs.APP_GIB), peewee.Value(now))
            opened = Preview.select(Preview.id, Preview.repository, *requests).where(unaccounted)
            fields = [PreviewUsage.preview, PreviewUsage.repository, PreviewUsage.cpu_cores, PreviewUsage.memory_gib]
            PreviewUsage.insert_from(opened, [*fields, PreviewUsage.started_at]).execute()
    return sorted({preview_id for _, preview_id, _ in stray} | set(missing))


def _grouped(keyed: Iterable[tuple[int, PreviewUsage]]) -> dict[int, list[costs.Stretch]]:
    groups: dict[int, list[costs.Stretch]] = defaultdict(list)
    for key, row in keyed:
        groups[key].append(costs.Stretch(row.started_at, row.ended_at, row.cpu_cores, row.memory_gib))
    return groups


def _overlapping(since: datetime, until: datetime) -> peewee.Expression:
    return (PreviewUsage.started_at < until) & (PreviewUsage.ended_at.is_null() | (PreviewUsage.ended_at > since))


def cost_by_preview(settings: Settings, preview_ids: Iterable[int], now: datetime) -> dict[int, float]:
    """Each preview's cost from its first slot until now."""
    ids = list(preview_ids)
    if not ids:
        return {}
    rows = PreviewUsage.select().where(PreviewUsage.preview.in_(ids))
    prices, epoch = prices_of(settings), datetime.min
    return {
        key: costs.cost(prices, found, epoch, now) for key, found in _grouped((r.preview_id, r) for r in rows).items()
    }


def open_cost(settings: Settings, now: datetime, which: peewee.Expression | None = None) -> Cost:
    """What the stretches still open (of those `which` selects) cost an hour now, and have cost
    since they opened."""
    query = PreviewUsage.select(PreviewUsage.cpu_cores, PreviewUsage.memory_gib, PreviewUsage.started_at)
    query = query.where(
        PreviewUsage.ended_at.is_null() & which if which is not None else PreviewUsage.ended_at.is_null()
    )
    prices, per_hour, so_far = prices_of(settings), 0.0, 0.0
    for cores, gib, started_at in query.tuples():
        rate = prices.per_hour(cores, gib)
        per_hour += rate
        so_far += rate * max(0.0, (now - started_at).total_seconds() / 3600)
    return Cost(so_far, per_hour)


def cost_of(settings: Settings, preview_id: int, now: datetime) -> Cost:
    """The preview's cost since its first slot, and what it costs an hour now (0 without a slot)."""
    so_far = cost_by_preview(settings, [preview_id], now).get(preview_id, 0.0)
    return Cost(so_far, open_cost(settings, now, PreviewUsage.preview == preview_id).per_hour)


def spent_by_repository(
    settings: Settings, since: datetime, until: datetime, repository_ids: Iterable[int] | None = None
) -> dict[int, float]:
    """What each repository's previews cost between `since` and `until`."""
    query = PreviewUsage.select().where(_overlapping(since, until))
    if repository_ids is not None:
        query = query.where(PreviewUsage.repository.in_(list(repository_ids)))
    prices = prices_of(settings)
    grouped = _grouped((row.repository_id, row) for row in query)
    return {key: costs.cost(prices, found, since, until) for key, found in grouped.items()}


def daily_by_repository(
    settings: Settings, repository_ids: Iterable[int], days: int, now: datetime
) -> tuple[datetime, dict[int, list[float]]]:
    """The first day shown, and each repository's cost per day over the `days` days to today."""
    first_day = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    ids = list(repository_ids)
    query = PreviewUsage.select().where(_overlapping(first_day, now) & PreviewUsage.repository.in_(ids))
    prices = prices_of(settings)
    grouped = _grouped((row.repository_id, row) for row in query)
    return first_day, {
        key: costs.daily_costs(prices, [_until(s, now) for s in grouped.get(key, [])], first_day, days) for key in ids
    }


def _until(stretch: costs.Stretch, now: datetime) -> costs.Stretch:
    """An open stretch counts until now, not to the end of today."""
    if stretch.ended_at is not None:
        return stretch
    return costs.Stretch(stretch.started_at, now, stretch.cores, stretch.gib)
