"""Helpers shared by several test modules: deliver a webhook, run its job, run a worker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from app.adapters.jobqueue import JobQueue
from app.db import database
from app.domain.gitea_events import RepositoryRef
from app.domain.k8s.labels import LABEL_PREVIEW_ID
from app.domain.planning import DEPLOY, Plan
from app.domain.states import DeliveryOutcome
from app.models import Preview, Repository, WebhookDelivery
from app.usecases.intake import deliveries, desired_state, triage
from tests.testbed.factories import SECRET, payload, webhook_request, with_changes

TOKEN = "api-token-" + "x" * 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SHOP = RepositoryRef(full_name="acme/shop", clone_url="http://git/acme/shop.git", private=False)


def want_pr(number: int, sha: str = "a" * 40, action: str = "opened") -> Preview:
    """What planning a delivery of acme/shop's PR `number` at `sha` records: its preview, queued."""
    plan = Plan(
        intent=DEPLOY,
        reason=f"pull request {action}",
        target_key=f"acme/shop#{number}",
        branch=f"feature/{number}",
        pr_number=number,
        head_sha=sha,
        action=action,
    )
    return desired_state.want_deploy(SHOP, plan)


def deliver(client_, name, kind, **changes):
    """POST a recorded delivery (with `changes`), signed, and plan it as a worker's first step
    would: intake's answer with the planned outcome, reason and preview id."""
    body = with_changes(payload(name), **changes) if changes else payload(name)
    response = client_.post("/webhooks/gitea", **webhook_request(body, kind))
    assert response.status_code == 202, response.json
    return planned(client_, response.json)


def planned(client_, answer):
    """Intake's `answer`, with the outcome, reason and preview id the worker's planning gave it."""
    if answer["outcome"] != DeliveryOutcome.RECEIVED:
        return {**answer, "preview_id": None}
    services = client_.application.extensions["previews"].services
    with database.connection_context():
        delivery = triage.triage(services, answer["delivery_id"])
        return {**answer, "outcome": delivery.outcome, "reason": delivery.reason, "preview_id": delivery.preview_id}


def run(services, delivery_id):
    with database.connection_context():
        return deliveries.process_delivery(services, delivery_id)


def configure_repository(**options):
    with database.connection_context():
        repository = Repository.get()
        repository.settings = {**(repository.settings or {}), **options}
        repository.save()


def the_preview():
    with database.connection_context():
        return Preview.get()


def worker_env(settings):
    """The environment a worker process needs to run against the test's settings."""
    ours = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "PREVIEW_QUEUE": settings.queue_name,
        "KUBECONFIG": settings.kubeconfig,
        "PREVIEW_REGISTRY": settings.preview_registry,
        "BUILD_NAMESPACE": settings.build_namespace,
        "REGISTRY_SHARED_FALLBACK": "true" if settings.registry_shared_fallback else "false",
        "PREVIEW_LEASE_TTL": str(int(settings.lease_ttl.total_seconds())),
        # The worker verifies each delivery's signature again before planning it.
        "GITEA_WEBHOOK_SECRET": settings.gitea_webhook_secret,
    }
    return dict(os.environ, **{name: value for name, value in ours.items() if value is not None})


def run_worker(settings):
    subprocess.run(
        [sys.executable, "-m", "workers.worker", "--burst"],
        env=worker_env(settings),
        check=True,
        timeout=120,
        capture_output=True,
    )


def process_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """Every process below `root`, as pid -> start time (so a reused pid is not mistaken for it)."""
    table = {int(p): process_stat(int(p)) for p in os.listdir("/proc") if p.isdigit()}
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, stat in table.items():
            if stat and stat[0] == parent and pid not in found:
                found[pid] = stat[1]
                frontier.append(pid)
    return found


def signal_worker(worker: subprocess.Popen, signum: int) -> None:
    """Signal a worker and its work horse (RQ puts the horse in a process group of its own)."""
    for pid in [worker.pid, *descendants(worker.pid)]:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.kill(pid, signum)


def kill_worker(worker: subprocess.Popen) -> None:
    """As a crash would: the worker and its work horse at once, no clean-up."""
    signal_worker(worker, signal.SIGKILL)
    worker.wait()


def start_busy_worker(client, services, stderr=subprocess.DEVNULL) -> tuple[subprocess.Popen, int]:
    """A worker process in the middle of a deploy: a PR opened whose build never finishes
    (KWOK's `never-ready`). Returns the process (in a session of its own: kill its group) and
    the preview's id, once the build Job exists."""
    from tests.testbed.kube.controlplane import BEHAVIOUR_LABEL
    from tests.testbed.kube.waiting import eventually

    accepted = deliver(client, "pull_request_opened", "pull_request")
    configure_repository(build_pod_labels={BEHAVIOUR_LABEL: "never-ready"})
    settings = services.settings
    worker = subprocess.Popen(
        [sys.executable, "-m", "workers.worker"],
        env=worker_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )
    preview_id = accepted["preview_id"]
    selector = f"{LABEL_PREVIEW_ID}={preview_id}"
    try:
        eventually(
            lambda: services.kube.list_jobs(settings.build_namespace, selector), timeout=60, what="the build job"
        )
    except BaseException:
        kill_worker(worker)
        raise
    return worker, preview_id


# Seconds: short, so that a killed worker's work resumes quickly in the tests that kill one.
SHORT_LEASE_TTL = 3


def service_env(settings, port, **extra):
    """The environment of the service's web, worker and scheduler processes for a test."""
    return {
        **worker_env(settings),
        "GITEA_WEBHOOK_SECRET": SECRET,
        "PREVIEW_DOMAIN": "preview.test",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PREVIEW_LEASE_TTL": f"{SHORT_LEASE_TTL}s",
        "SCHEDULER_INTERVAL": "1s",
        "STALLED_AFTER": "5s",
        "WEB_CONCURRENCY": "2",
        **extra,
    }


def register(full_name, **options):
    """The repository row with its options, as an operator would set them, before its first delivery."""
    with database.connection_context():
        Repository.create(full_name=full_name, clone_url=f"http://git.test/{full_name}.git", settings=options)


WEBHOOK_URL = "/webhooks/gitea"


def post_webhook(client, name, kind, **options):
    """POST a recorded payload (or `body`), signed, to the webhook endpoint of a test app."""
    body = options.pop("body", None) or payload(name)
    return client.post(WEBHOOK_URL, **webhook_request(body, kind, **options))


def post_and_plan(client, name, kind, **options):
    """`post_webhook`, then the worker's planning of what it stored (see `planned`)."""
    response = post_webhook(client, name, kind, **options)
    assert response.status_code == 202, response.json
    return planned(client, response.json)


def queued_job_ids(settings):
    return JobQueue(settings.redis_url, settings.queue_name).job_ids


def all_deliveries():
    with database.connection_context():
        return list(WebhookDelivery.select().order_by(WebhookDelivery.id))
