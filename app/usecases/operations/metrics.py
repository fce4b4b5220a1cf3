"""Prometheus metrics, read from the database and Redis at scrape time.

Reading shared state (not per-process counters) gives the same answer from any
web process, and survives restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import peewee
from peewee import SQL
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from app.db import database
from app.domain.states import DeliveryOutcome, PreviewState
from app.models import Deployment, WebhookDelivery
from app.models import Preview as PreviewModel
from app.usecases.ports import Counters, CountersUnavailable, Queue, QueueUnavailable

log = logging.getLogger(__name__)


def record_refused_webhook(counters: Counters, reason: str) -> None:
    """A delivery refused before anything was stored (unregistered repository, bad signature): counted only."""
    try:
        counters.webhook_refused(reason)
    except CountersUnavailable as error:
        log.warning("could not count a refused webhook error=%s", error)


def record_sweep(counters: Counters, removed: dict[str, int], refused: bool = False) -> None:
    """Called by the scheduler after each pass. `refused`: its sweep's circuit breaker opened
    (it closes again with the next clean pass)."""
    try:
        counters.record_sweep(removed, refused)
    except CountersUnavailable as error:
        log.warning("could not record sweep metrics error=%s", error)


class PreviewCollector(Collector):
    def __init__(self, queue: Queue, counters: Counters) -> None:
        self.queue, self.counters = queue, counters

    def collect(self) -> Iterator:
        with database.connection_context():
            yield from self._from_database()
        yield from self._from_redis()

    def _from_database(self) -> Iterator:
        # Counted and summed by the database (GROUP BY), not row by row here: a scrape
        # every few seconds must not grow with the history.
        states = GaugeMetricFamily("previews", "Previews by state", labels=["state"])
        counts = {state: 0 for state in PreviewState.ALL}
        counts.update(_counted(PreviewModel.state))
        for state, count in counts.items():
            states.add_metric([state], count)
        yield states

        deliveries = CounterMetricFamily(
            "preview_webhook_deliveries", "Verified webhook deliveries by outcome", labels=["outcome"]
        )
        outcomes: dict[str, int] = {outcome.value: 0 for outcome in DeliveryOutcome}  # received: not planned yet
        outcomes.update(_counted(WebhookDelivery.outcome))
        for outcome, count in outcomes.items():
            deliveries.add_metric([outcome], count)
        yield deliveries

        unreported = PreviewModel.select().where(PreviewModel.report_version > PreviewModel.reported_version).count()
        yield GaugeMetricFamily(
            "preview_reports_pending", "Previews whose state Gitea has not been told yet", value=unreported
        )

        durations = SummaryMetricFamily(
            "preview_phase_duration_seconds", "Time spent per pipeline phase", labels=["phase"]
        )
        for phase, count, total in sorted(_phase_totals()):
            durations.add_metric([phase], count_value=count, sum_value=float(total))
        yield durations

    def _from_redis(self) -> Iterator:
        try:
            depth = self.queue.depth()
            counted = self.counters.read()
        except (QueueUnavailable, CountersUnavailable) as error:  # the database metrics still answer
            log.warning("metrics from redis unavailable error=%s", error)
            return
        runs, sweep_refused = counted["sweeps"], counted["sweep_refused"]
        removed, refused = counted["sweep_removed"], counted["webhooks_refused"]
        yield GaugeMetricFamily("preview_queue_depth", "Jobs waiting in the queue", value=depth)
        yield CounterMetricFamily("preview_sweeps", "Scheduler passes", value=runs)
        yield GaugeMetricFamily(
            "preview_sweep_refused",
            "1 while the last scheduler pass refused to delete orphans (too many at once, or a database"
            " that knows no previews); 0 again after a clean pass",
            value=sweep_refused,
        )
        family = CounterMetricFamily("preview_sweep_removed", "What the sweeps removed or acted on", labels=["kind"])
        for kind, count in sorted(removed.items()):
            family.add_metric([kind], count)
        yield family
        refusals = CounterMetricFamily(
            "preview_webhooks_refused", "Deliveries refused before anything was stored", labels=["reason"]
        )
        for reason, count in sorted(refused.items()):
            refusals.add_metric([reason], count)
        yield refusals


def _counted(column: peewee.Field) -> dict[str, int]:
    rows = column.model.select(column, peewee.fn.COUNT(SQL("*"))).group_by(column).tuples()
    return {value: count for value, count in rows}


def _phase_totals() -> list[tuple[str, int, float]]:
    """(phase, deployments that ran it, seconds summed) from every Deployment's JSON timings."""
    table = Deployment._meta.table_name
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        each = f"json_each_text({table}.timings::json) AS phase"
        total = "SUM(CAST(phase.value AS DOUBLE PRECISION))"
    else:
        each, total = f"json_each({table}.timings) AS phase", "SUM(phase.value)"
    cursor = database.execute_sql(f"SELECT phase.key, COUNT(*), {total} FROM {table}, {each} GROUP BY phase.key")
    return list(cursor.fetchall())


def registry(queue: Queue, counters: Counters) -> CollectorRegistry:
    result = CollectorRegistry(auto_describe=False)
    result.register(PreviewCollector(queue, counters))
    return result
