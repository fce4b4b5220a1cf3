"""`python -m workers.worker`: runs the previews queue's jobs.

RQ's default worker forks a work horse for every job: each job then opened its own
connections (PostgreSQL, the API server's TLS, Gitea) and paid for the fork, about a
tenth of a PR's way to ready on a KWOK cluster. Here one process runs job after job
with its connections kept (RQ's SimpleWorker), and recycles itself: after
`JOBS_PER_PROCESS` jobs, or if a job kills it, the supervising parent (which imported
everything and connected to nothing) forks a fresh one. A job still cannot run for
ever: RQ stops it at its timeout (SIGALRM in the same process).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from rq import SimpleWorker
from rq.job import Job
from rq.queue import Queue

from app import bootstrap
from app.adapters.jobqueue import QUEUE_OPTIONS, JobQueue
from app.usecases.ports import ClusterNotConfigured
from workers import context, health

log = logging.getLogger(__name__)

# Jobs one process runs before a fresh one takes over (memory a job left behind goes with it).
JOBS_PER_PROCESS = 200
# A process that died within this long of its start is replaced only after this long.
RESPAWN_PAUSE_SECONDS = 1.0
# How often a running job tells the liveness probe the process is alive (jobs run for minutes).
ALIVE_EVERY_SECONDS = 30.0
# How long the pubsub thread (RQ's commands channel) waits for a message at a time: what its
# stop costs when the job process ends.
PUBSUB_WAIT_SECONDS = 1.0


class PreviewWorker(SimpleWorker):
    """RQ's in-process worker, whose heartbeats also reach the liveness probe's file
    (workers/health.py), also while a long job runs."""

    def subscribe(self) -> None:
        """RQ's, but its pubsub thread waits for messages a second at a time, not 60: when RQ
        unsubscribes (the job process recycled, or stopping), redis-py 8 joins that thread,
        and one that had just read the unsubscribe reply slept out its 60 s first, holding up
        the next job process for a minute (seen in test_worker_process under load)."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]  # RQ types it None
            sleep_time=PUBSUB_WAIT_SECONDS, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline)
        health.touch()

    def execute_job(self, job: Job, queue: Queue) -> None:
        done = threading.Event()

        def alive() -> None:
            while not done.wait(ALIVE_EVERY_SECONDS):
                health.touch()

        beating = threading.Thread(target=alive, name="alive", daemon=True)
        beating.start()
        try:
            super().execute_job(job, queue)
        finally:
            done.set()
            beating.join()


def _preload() -> JobQueue:
    """Everything a job needs that costs CPU, done once in the parent: the jobs (and the
    Kubernetes client) imported, the adapters built. Nothing is connected yet, so every
    child starts with fresh, unused pools."""
    started = context.start(pooled=True)  # connections kept between a process's jobs
    queue = started.queue
    assert isinstance(queue, JobQueue), "the worker runs RQ's queue"
    importlib.import_module("workers.jobs")
    try:
        _ = started.kube
    except ClusterNotConfigured as error:
        log.warning("%s; jobs will fail until the cluster is configured", error)
    return queue


def run_jobs(queue: JobQueue, burst: bool, max_jobs: int | None) -> None:
    worker = PreviewWorker([queue.queue], connection=queue.connection, **QUEUE_OPTIONS)
    # The built-in scheduler moves retries with backoff back onto the queue.
    worker.work(burst=burst, with_scheduler=not burst, max_jobs=max_jobs)


class Supervisor:
    """Keeps one job-running child alive until asked to stop (SIGTERM or SIGINT, passed on
    to the child, which finishes its job first)."""

    def __init__(self, queue: JobQueue, jobs_per_process: int) -> None:
        self.queue = queue
        self.jobs_per_process = jobs_per_process
        self.child: int | None = None
        self.stopping = False

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None:
            os.kill(self.child, signum)

    def _fork(self) -> int:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                # A group of its own, with RQ's scheduler process that it starts: if a job kills
                # this process, the supervisor ends that orphan too (it would keep the scheduler
                # lock and a copy of this process's Redis socket, still blocked in a BLMOVE
                # that would swallow the next job).
                os.setpgrp()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                run_jobs(self.queue, burst=False, max_jobs=self.jobs_per_process)
            except BaseException:
                log.exception("the job process failed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        return pid

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        while not self.stopping:
            started = time.monotonic()
            self.child = self._fork()
            if self.stopping:  # asked to stop while it was being forked
                os.kill(self.child, signal.SIGTERM)
            _, status = os.waitpid(self.child, 0)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child, signal.SIGKILL)  # whatever it left running
            self.child = None
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                return 0
            if code == 0:
                log.info("job process recycled after %d jobs", self.jobs_per_process)
                continue
            log.warning("job process ended with %s; starting another", code)
            if time.monotonic() - started < RESPAWN_PAUSE_SECONDS:
                time.sleep(RESPAWN_PAUSE_SECONDS)
        return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run jobs from the previews queue.")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty (in this process)")
    parser.add_argument(
        "--jobs-per-process", type=int, default=JOBS_PER_PROCESS, help="jobs a process runs before a fresh one"
    )
    args = parser.parse_args(argv)
    bootstrap.configure_logging()
    queue = _preload()
    if args.burst:
        run_jobs(queue, burst=True, max_jobs=None)
        return
    sys.exit(Supervisor(queue, args.jobs_per_process).run())


if __name__ == "__main__":
    main()
