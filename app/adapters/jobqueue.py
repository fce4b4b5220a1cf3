"""The job queue adapter: the only module that imports rq and redis.

Jobs are named by dotted path (e.g. `workers.jobs.process_delivery`) so the
app does not import the workers package.

Whoever can write to Redis (the web process too) must not be able to make a worker
run code: jobs are JSON, not pickles (their arguments are ids), and a worker runs
only the functions of `workers.jobs`, with no callbacks.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from app.usecases.ports import QueueUnavailable

log = logging.getLogger(__name__)

JOBS_MODULE = "workers.jobs"


class UnknownJob(Exception):
    """A job in the queue names a function that is not one of ours."""


class KnownJob(Job):
    """An RQ job that resolves only `workers.jobs.<name>`, never a method or a callback, and
    sends no webhook (a job's webhooks would make the worker post to any address)."""

    @property  # type: ignore[override]
    def webhooks(self) -> list[Any]:
        return []

    @webhooks.setter
    def webhooks(self, value: list[Any]) -> None:
        if value:
            log.warning("job webhooks ignored job_id=%s", getattr(self, "_id", None))

    @property
    def func(self) -> Any:
        module, _, name = (self.func_name or "").rpartition(".")
        if module != JOBS_MODULE or not name.isidentifier() or self.instance is not None:
            raise UnknownJob(f"job {self.id} names {self.func_name!r}, not a function of {JOBS_MODULE}")
        return Job.func.fget(self)  # type: ignore[attr-defined]

    def _no_callback(self, kind: str, name: str | None) -> None:
        if name:
            log.warning("job callback ignored job_id=%s kind=%s name=%s", self.id, kind, name)

    @property
    def success_callback(self) -> None:
        self._no_callback("success", self._success_callback_name)

    @property
    def failure_callback(self) -> None:
        self._no_callback("failure", self._failure_callback_name)

    @property
    def stopped_callback(self) -> None:
        self._no_callback("stopped", self._stopped_callback_name)


# What a Queue or Worker of ours is made with.
QUEUE_OPTIONS: dict[str, Any] = {"serializer": JSONSerializer, "job_class": KnownJob}

# Backoff between attempts of a failed job, in seconds.
RETRY_INTERVALS = [10, 30, 60, 120, 300]


def _job_options(job_id: str, timeout: int, keep_result: bool = True) -> dict[str, Any]:
    """Every job: one per id, retried with backoff, its result kept a day and a failure a week.

    Without `keep_result` a finished job is forgotten at once, so its id dedups only
    while the job waits or runs, and the same id can be queued again right after.
    """
    return {
        "job_id": job_id,
        "unique": True,
        "job_timeout": timeout,
        "retry": Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        "result_ttl": 86400 if keep_result else 0,
        "failure_ttl": 7 * 86400,
    }


class JobQueue:
    def __init__(
        self,
        redis_url: str,
        name: str,
        socket_timeout: float = 2.0,
        job_timeout: int = 3600,
        connection: redis.Redis | None = None,
    ) -> None:
        # Short timeouts keep a webhook answer well inside Gitea's 5 s budget when Redis is down.
        self.connection = connection or redis.Redis.from_url(
            redis_url, socket_connect_timeout=socket_timeout, socket_timeout=socket_timeout
        )
        self.queue = Queue(name, connection=self.connection, **QUEUE_OPTIONS)
        # Job ids are global to the Redis server: two installations (two queues) on one Redis
        # must not take each other's `delivery-1` for a duplicate.
        self.prefix = re.sub(r"[^A-Za-z0-9_-]", "_", name) + "--"
        # A job running longer is stopped by RQ: its lease then lapses and the scheduler resumes it.
        self.job_timeout = job_timeout

    @property
    def job_ids(self) -> list[str]:
        """The ids of the jobs waiting in the queue, as the callers named them."""
        return [job_id.removeprefix(self.prefix) for job_id in self.queue.job_ids]

    def enqueue(
        self, func: str, *args: object, job_id: str, timeout: int | None = None, keep_result: bool = True
    ) -> bool:
        """Queue `func(*args)` once under `job_id`. False when that job id is already queued or running
        (or, with `keep_result`, finished within the last day)."""
        try:
            options = _job_options(self.prefix + job_id, timeout or self.job_timeout, keep_result)
            self.queue.enqueue(func, *args, **options)
        except DuplicateJobError:
            log.info("job already queued job_id=%s", job_id)
            return False
        except redis.RedisError as error:
            raise QueueUnavailable(str(error)) from error
        return True

    def enqueue_in(self, seconds: float, func: str, *args: object, job_id: str, timeout: int | None = None) -> bool:
        """Queue `func(*args)` to run in `seconds` (the workers' scheduler moves it onto the queue).
        False when that job id exists already."""
        try:
            self.queue.enqueue_in(
                timedelta(seconds=seconds),
                func,
                *args,
                **_job_options(self.prefix + job_id, timeout or self.job_timeout),
            )
        except DuplicateJobError:
            return False
        except redis.RedisError as error:
            raise QueueUnavailable(str(error)) from error
        return True

    def waiting_job_ids(self) -> set[str]:
        """The ids of the jobs still to run: in the queue, or scheduled for later (a retry's
        backoff, a deferral). A job that is running is not counted: its worker may be dead."""
        try:
            ids = [
                *self.queue.job_ids,
                *self.queue.scheduled_job_registry.get_job_ids(),
                *self.queue.deferred_job_registry.get_job_ids(),
            ]
        except redis.RedisError as error:
            raise QueueUnavailable(str(error)) from error
        return {job_id.removeprefix(self.prefix) for job_id in ids}

    def resubmit(
        self, func: str, *args: object, job_id: str, timeout: int | None = None, running_is_lost: bool = False
    ) -> bool:
        """Queue `func(*args)` under `job_id` again unless that job is still waiting or running:
        True when it was lost (Redis flushed or failed over) or had failed for good, and is queued anew.
        `running_is_lost`: the caller knows a running job of this id would have shown progress by
        now, so one that still counts as running died with its worker (RQ notices that only
        after the job's timeout)."""
        key = self.prefix + job_id
        try:
            job = KnownJob.fetch(key, connection=self.connection, serializer=JSONSerializer)
        except NoSuchJobError:
            job = None
        except redis.RedisError as error:
            raise QueueUnavailable(str(error)) from error
        if job is not None:
            lost = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
            if running_is_lost:
                lost.add(JobStatus.STARTED)
            if job.get_status(refresh=False) not in lost:
                return False
            job.delete()
        return self.enqueue(func, *args, job_id=job_id, timeout=timeout)

    def ping(self) -> bool:
        try:
            return bool(self.connection.ping())
        except redis.RedisError:
            return False

    def depth(self) -> int:
        try:
            return self.queue.count
        except redis.RedisError as error:
            raise QueueUnavailable(str(error)) from error
