"""`python -m workers.worker`: an RQ worker on the previews queue."""

from __future__ import annotations

import argparse
import importlib
import logging
from typing import Any

from rq import Worker

from app import bootstrap
from app.adapters.jobqueue import QUEUE_OPTIONS, JobQueue
from app.usecases.ports import ClusterNotConfigured
from workers import health
from workers.context import services

log = logging.getLogger(__name__)


class HeartbeatWorker(Worker):
    """RQ's worker, whose heartbeats also reach the liveness probe's file (workers/health.py)."""

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline)
        health.touch()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run jobs from the previews queue.")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    args = parser.parse_args(argv)
    bootstrap.configure_logging()
    context = services()
    queue = context.queue
    assert isinstance(queue, JobQueue), "the worker runs RQ's queue"
    # Import the jobs (and the Kubernetes client) once here: each job runs in a forked work
    # horse, which then starts with them loaded instead of importing them again.
    importlib.import_module("workers.jobs")
    # Build the adapters here too: the Kubernetes client imports its API classes and their
    # models lazily, several seconds of CPU that every job would otherwise pay again.
    # Nothing is connected yet, so each work horse starts with fresh, unused pools.
    try:
        _ = context.kube
    except ClusterNotConfigured as error:
        log.warning("%s; jobs will fail until the cluster is configured", error)
    worker = HeartbeatWorker([queue.queue], connection=queue.connection, **QUEUE_OPTIONS)
    # The built-in scheduler moves retries with backoff back onto the queue.
    worker.work(burst=args.burst, with_scheduler=not args.burst)


if __name__ == "__main__":
    main()
