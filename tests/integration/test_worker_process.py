"""The worker runs job after job in one process and recycles it: a fresh process after its
share of jobs, or after a job killed it; SIGTERM stops it with nothing left behind."""

import signal
import subprocess
import sys
import time
from pathlib import Path

from rq.job import Job
from rq.serializers import JSONSerializer

from app.adapters.jobqueue import JobQueue
from tests.testbed.helpers import descendants, process_stat, worker_env


def _finished(queue: JobQueue, job_ids: list[str], timeout: float = 60) -> list[Job]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = [
            Job.fetch(queue.prefix + job_id, connection=queue.connection, serializer=JSONSerializer)
            for job_id in job_ids
        ]
        if all(job.get_status() == "finished" for job in jobs) or time.monotonic() > deadline:
            return jobs
        time.sleep(0.2)


def _job_processes(worker: subprocess.Popen) -> list[int]:
    """The supervisor's own children (the job process; RQ's scheduler runs below it)."""
    return [pid for pid in descendants(worker.pid) if (process_stat(pid) or (0,))[0] == worker.pid]


def _running(pid: int, started: int) -> bool:
    """The process that had this pid then, still running (a zombie waiting for init does not count)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return int(fields[19]) == started and fields[0] not in ("Z", "X")


def _start(settings, log_path, *options: str) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "workers.worker", *options], env=worker_env(settings), stdout=log, stderr=log
        )


def test_the_worker_recycles_its_process_and_stops_cleanly(settings, tmp_path):
    queue = JobQueue(settings.redis_url, settings.queue_name)
    worker = _start(settings, tmp_path / "worker.log", "--jobs-per-process", "2")
    try:
        ids = [f"report-{n}" for n in range(5)]
        for job_id in ids:  # a report for a preview that does not exist: a quick job
            queue.enqueue("workers.jobs.report_preview", 999, job_id=job_id)
        # Well within a minute: RQ's pubsub thread once held each recycling up to 60 s.
        jobs = _finished(queue, ids, timeout=30)
        assert [job.get_status() for job in jobs] == ["finished"] * 5
        # Two jobs per process: the five ran in three processes, one after another.
        assert len({job.worker_name for job in jobs}) == 3
        assert worker.poll() is None

        children = descendants(worker.pid)
        assert children, "a job process runs under the supervisor"
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        assert not any(pid in descendants(worker.pid) for pid in children)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        queue.queue.empty()


def test_a_job_that_kills_its_process_does_not_stop_the_worker(settings, tmp_path):
    """The process is replaced, and the next job runs."""
    queue = JobQueue(settings.redis_url, settings.queue_name)
    worker = _start(settings, tmp_path / "worker.log")
    try:
        queue.enqueue("workers.jobs.report_preview", 999, job_id="first")
        [first] = _finished(queue, ["first"])
        [job_process] = _job_processes(worker)
        before = descendants(worker.pid)  # the job process and RQ's scheduler below it
        subprocess.run(["kill", "-KILL", str(job_process)], check=True)
        # Replaced; what the dead process left running (RQ's scheduler) is gone with it.
        deadline = time.monotonic() + 30
        while _job_processes(worker) in ([], [job_process]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_job_processes(worker)) == 1
        assert [pid for pid, started in before.items() if _running(pid, started)] == []
        queue.enqueue("workers.jobs.report_preview", 999, job_id="second")
        [second] = _finished(queue, ["second"])
        assert second.get_status() == "finished", (tmp_path / "worker.log").read_text()
        assert second.worker_name != first.worker_name
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        queue.queue.empty()
