"""Queueing the preview jobs, with ids that say what they are for.

RQ refuses a second job under an id it still knows, so the ids carry what makes
two requests different work (the commit, a time window, a reason).
"""

from __future__ import annotations

import logging
import re

from app.db import utcnow
from app.usecases.ports import Queue, QueueUnavailable

log = logging.getLogger(__name__)

# The jobs, by dotted path: the use cases queue them without importing the workers package
# (tests/test_code_map.py checks that each path imports).
PROCESS_DELIVERY_JOB = "workers.jobs.process_delivery"
DEPLOY_JOB = "workers.jobs.deploy_preview"
TEARDOWN_JOB = "workers.jobs.teardown_preview"
REPORT_JOB = "workers.jobs.report_preview"
SLEEP_JOB = "workers.jobs.sleep_preview"
WAKE_JOB = "workers.jobs.wake_preview"
SCREENSHOT_JOB = "workers.jobs.screenshot_preview"

# A job that finds another worker acting on its preview comes back after this long.
DEFER_SECONDS = 2


def enqueue_deploy(queue: Queue, preview_id: int, sha: str, tag: str, keep_result: bool = True) -> bool:
    job_id = f"deploy-{preview_id}-{sha[:12]}-{tag}"
    return queue.enqueue(DEPLOY_JOB, preview_id, sha, job_id=job_id, keep_result=keep_result)


def enqueue_teardown(queue: Queue, preview_id: int, reason: str, tag: str) -> bool:
    return queue.enqueue(TEARDOWN_JOB, preview_id, reason, job_id=f"teardown-{preview_id}-{tag}")


def enqueue_report(queue: Queue, preview_id: int, version: int, attempt: int) -> bool:
    """One job per report try while it waits or runs (then forgotten, so a try that found the
    lease held is simply queued again by the scheduler's next pass)."""
    job_id = f"report-{preview_id}-v{version}-a{attempt}"
    return queue.enqueue(REPORT_JOB, preview_id, job_id=job_id, keep_result=False)


def defer(queue: Queue, func: str, preview_id: int, *args: str) -> None:
    """Run the job again shortly: its preview's lease is held by another worker.

    Deferrals of the same work in the same few seconds share one id, so waiting
    jobs collapse into one instead of multiplying.
    """
    window = int(utcnow().timestamp() // DEFER_SECONDS)
    kind = func.rsplit(".", 1)[-1]
    key = re.sub(r"[^A-Za-z0-9_-]", "_", "-".join(str(a)[:12] for a in args))
    job_id = f"{kind}-{preview_id}-{key}-deferred-{window}"
    try:
        queue.enqueue_in(DEFER_SECONDS, func, preview_id, *args, job_id=job_id)
    except QueueUnavailable:
        log.warning("could not defer job=%s preview_id=%s; the scheduler resumes it", kind, preview_id)
