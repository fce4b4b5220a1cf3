"""`python -m workers.scheduler`: the periodic loop.

Each pass re-enqueues deliveries that never reached the queue, expires TTLs,
starts previews waiting for a slot, resumes stuck work and collects orphan
namespaces. A failing step is logged and the pass carries on; every pass ends
with one summary line.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from app import bootstrap
from app.usecases.operations import lifecycle, metrics
from workers import health
from workers.context import services

log = logging.getLogger(__name__)


def _count(value: Any) -> str:
    if isinstance(value, lifecycle.OrphanReport):
        return f"{len(value.deleted)}/{len(value.vanished)}"
    return str(len(value)) if isinstance(value, list) else str(value)


def main(stop: threading.Event | None = None) -> None:
    bootstrap.configure_logging()
    context = services()
    stop = stop or threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        summary = lifecycle.run_pass(context)
        metrics.record_sweep(context.counters, lifecycle.removed_counts(summary), lifecycle.sweep_refused(summary))
        log.info("scheduler pass %s", " ".join(f"{k}={_count(v)}" for k, v in summary.items()))
        health.touch()
        stop.wait(context.settings.scheduler_interval.total_seconds())


if __name__ == "__main__":
    main()
