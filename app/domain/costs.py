"""What previews cost: requested CPU and memory, priced per hour, over the time they held them.

A stretch of use is (start, end or None while it lasts, cores, GiB); its cost over a window
counts only the part inside the window, so a month or a day is priced on its own."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.k8s.workload import APP_REQUESTS


@dataclass(frozen=True)
class Prices:
    cpu_core_hour: float
    memory_gib_hour: float

    def per_hour(self, cores: float, gib: float) -> float:
        return cores * self.cpu_core_hour + gib * self.memory_gib_hour


def cores(quantity: str) -> float:
    """A Kubernetes CPU quantity ("100m", "2") in cores."""
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def gibibytes(quantity: str) -> float:
    """A Kubernetes memory quantity ("128Mi", "1Gi", bytes) in GiB."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factor / 2**30
    return float(quantity) / 2**30


# What a running preview requests (its app container): what the estimate prices.
APP_CORES = cores(APP_REQUESTS["cpu"])
APP_GIB = gibibytes(APP_REQUESTS["memory"])


@dataclass(frozen=True)
class Stretch:
    started_at: datetime
    ended_at: datetime | None  # None: still holding its resources
    cores: float
    gib: float


def hours_within(stretch: Stretch, since: datetime, until: datetime) -> float:
    """Hours of `stretch` between `since` and `until` (an open stretch lasts until `until`)."""
    start = max(stretch.started_at, since)
    end = min(stretch.ended_at or until, until)
    return max(0.0, (end - start).total_seconds() / 3600)


def cost(prices: Prices, stretches: Iterable[Stretch], since: datetime, until: datetime) -> float:
    return sum(prices.per_hour(s.cores, s.gib) * hours_within(s, since, until) for s in stretches)


def daily_costs(prices: Prices, stretches: Iterable[Stretch], first_day: datetime, days: int) -> list[float]:
    """The cost of each of `days` days from midnight `first_day` on; a stretch is priced only
    on the days it touched."""
    totals = [0.0] * days
    window_end = first_day + timedelta(days=days)
    for stretch in stretches:
        end = min(stretch.ended_at or window_end, window_end)
        if end <= first_day or stretch.started_at >= window_end:
            continue
        first = max(0, (stretch.started_at - first_day).days)
        last = min(days - 1, (end - first_day - timedelta(microseconds=1)).days)
        rate = prices.per_hour(stretch.cores, stretch.gib)
        for day in range(first, last + 1):
            since = first_day + timedelta(days=day)
            totals[day] += rate * hours_within(stretch, since, min(since + timedelta(days=1), end))
    return totals


def month_start(now: datetime) -> datetime:
    """Midnight of the first day of `now`'s calendar month: budgets are monthly, in UTC."""
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
