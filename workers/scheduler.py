"""`python -m workers.scheduler`: the periodic loop.

Each pass re-enqueues deliveries that never reached the queue. A failing pass
is logged and the loop carries on; every pass ends with one summary line.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field

from app import intake, runtime
from app.db import database
from app.jobqueue import JobQueue
from workers.context import started

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 15


@dataclass
class PassSummary:
    enqueued: int = 0
    errors: list[str] = field(default_factory=list)


def run_pass(queue: JobQueue) -> PassSummary:
    summary = PassSummary()
    try:
        with database.connection_context():
            summary.enqueued = intake.enqueue_pending(queue)
    except Exception as error:  # one failed step must not stop the loop
        log.exception("scheduler step failed step=enqueue_pending")
        summary.errors.append(f"enqueue_pending: {error}")
    return summary


def main(stop: threading.Event | None = None) -> None:
    runtime.configure_logging()
    _, _, queue = started()
    stop = stop or threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        summary = run_pass(queue)
        log.info("scheduler pass enqueued=%d errors=%d", summary.enqueued, len(summary.errors))
        stop.wait(INTERVAL_SECONDS)


if __name__ == "__main__":
    main()
