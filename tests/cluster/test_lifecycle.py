"""TTL expiry, orphan collection, stuck work and capacity, on the real control plane."""

from datetime import timedelta

import pytest
from kubernetes import client as k8s

from app.adapters.kube import Kube
from app.db import database, utcnow
from app.domain import costs
from app.domain.k8s.labels import LABEL_MANAGED_BY, LABEL_PREVIEW_ID, MANAGED_BY
from app.domain.states import PreviewState
from app.models import Preview, PreviewUsage, WebhookDelivery
from app.usecases.deploy import budgets, pipeline, teardown, usage
from app.usecases.operations import lifecycle, metrics
from tests.testbed.helpers import configure_repository, deliver, run, run_worker
from tests.testbed.kube.controlplane import BEHAVIOUR_LABEL
from tests.testbed.kube.waiting import eventually, namespace_gone, unique_name

pytestmark = pytest.mark.kube


@pytest.fixture
def database_url(postgres_server):
    import uuid

    return postgres_server.create_database(f"lifecycle_{uuid.uuid4().hex[:8]}")


def preview(preview_id=None):
    with database.connection_context():
        return Preview.get_by_id(preview_id) if preview_id else Preview.get()


def queued(services, prefix):
    return [job_id for job_id in services.queue.job_ids if job_id.startswith(prefix)]


def run_queued_jobs(services):
    """Run what the scheduler queued, in a worker process, as production would."""

    run_worker(services.settings)


def test_a_preview_past_its_ttl_is_torn_down(client, services, kube_api):
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    ready = preview()
    assert ready.expires_at - ready.updated_at >= timedelta(hours=167)
    assert lifecycle.run_pass(services, now=ready.expires_at - timedelta(seconds=1))["expired"] == []

    summary = lifecycle.run_pass(services, now=ready.expires_at + timedelta(seconds=1))
    assert summary["expired"] == [ready.id]
    assert preview().state == PreviewState.DELETING
    [_job] = queued(services, f"teardown-{ready.id}-")
    with database.connection_context():
        assert teardown.teardown(services, ready.id, "TTL expired") == "deleted"
    eventually(lambda: namespace_gone(kube_api, ready.namespace), timeout=90, what="namespace deleted")


def test_an_expired_preview_wanted_again_comes_back_and_stays(client, services, kube_api):
    """After a TTL teardown a push is a new deploy with its own expiry: no scheduler pass, before
    or after the worker runs it, expires it again."""
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    first = preview()
    with database.connection_context():
        Preview.update(expires_at=utcnow() - timedelta(seconds=1)).where(Preview.id == first.id).execute()
    assert lifecycle.run_pass(services)["expired"] == [first.id]
    with database.connection_context():
        assert teardown.teardown(services, first.id, "TTL expired") == "deleted"
    eventually(lambda: namespace_gone(kube_api, first.namespace), timeout=120, what="namespace deleted")

    pushed = deliver(client, "pull_request_synchronized", "pull_request_sync")
    assert lifecycle.run_pass(services)["expired"] == []  # queued, not yet deployed: not expired again
    assert run(services, pushed["delivery_id"]) == "ready"
    for _ in range(3):
        assert lifecycle.run_pass(services)["expired"] == []
    again = preview()
    assert again.state == PreviewState.READY
    assert again.expires_at > utcnow() + timedelta(hours=167)


def test_a_pinned_preview_does_not_expire(client, services):
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    deliver(
        client,
        "pull_request_label_updated",
        "pull_request_label",
        **{"pull_request.labels": [{"id": 1, "name": "preview:keep", "color": "00ff00"}]},
    )
    pinned = preview()
    assert pinned.pinned
    assert lifecycle.run_pass(services, now=pinned.expires_at + timedelta(days=30))["expired"] == []
    assert preview().state == PreviewState.READY
    deliver(client, "pull_request_label_updated", "pull_request_label", **{"pull_request.labels": []})
    assert not preview().pinned


def _namespace(kube_api, labels, name=None):
    name = name or unique_name("stray")
    k8s.CoreV1Api(kube_api).create_namespace({"metadata": {"name": name, "labels": labels}})
    return name


def test_orphans_with_our_label_are_collected_after_a_grace_period_and_others_never(client, services, kube_api):
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    ours = {LABEL_MANAGED_BY: MANAGED_BY, "environment": "preview", LABEL_PREVIEW_ID: "9999"}
    orphan = _namespace(kube_api, ours, unique_name("preview-stray"))
    foreign = _namespace(kube_api, {"environment": "preview"})
    not_our_name = _namespace(kube_api, ours)  # our labels on a name we never give: not ours to delete
    # A live preview's id on a namespace that preview does not own: an orphan all the same.
    impostor = _namespace(kube_api, {**ours, LABEL_PREVIEW_ID: str(preview().id)}, unique_name("preview-copy"))
    try:
        now = utcnow()
        assert lifecycle.run_pass(services, now=now)["orphans"].deleted == []  # still in its grace period
        dry = lifecycle.run_pass(services, now=now + timedelta(minutes=11), dry_run=True)["orphans"]
        assert set(dry.deleted) == {orphan, impostor}
        assert not namespace_gone(kube_api, orphan)
        report = lifecycle.run_pass(services, now=now + timedelta(minutes=11))["orphans"]
        assert set(report.deleted) == {orphan, impostor}
        eventually(lambda: namespace_gone(kube_api, orphan), timeout=90, what="orphan deleted")
        for kept in (foreign, not_our_name, preview().namespace):
            assert k8s.CoreV1Api(kube_api).read_namespace(kept).status.phase == "Active"
    finally:
        k8s.CoreV1Api(kube_api).delete_namespace(foreign)


def test_nothing_is_deleted_when_the_api_server_is_unreachable(client, services, kube_api):
    from app.adapters.kube import load_configuration
    from tests.testbed.servers import free_port

    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    orphan = _namespace(kube_api, {LABEL_MANAGED_BY: MANAGED_BY, "environment": "preview", LABEL_PREVIEW_ID: "9999"})
    configuration = load_configuration(services.settings.kubeconfig)
    configuration.host = f"https://127.0.0.1:{free_port()}"
    services.kube = Kube(configuration, timeout=2)
    summary = lifecycle.run_pass(services, now=utcnow() + timedelta(minutes=11))
    assert str(summary["orphans"]).startswith("error: ")
    assert preview().state == PreviewState.READY
    assert k8s.CoreV1Api(kube_api).read_namespace(orphan).status.phase == "Active"


def test_a_wrong_database_refuses_to_sweep(services, kube_api, app):
    orphan = _namespace(kube_api, {LABEL_MANAGED_BY: MANAGED_BY, "environment": "preview", LABEL_PREVIEW_ID: "1"})
    summary = lifecycle.run_pass(services, now=utcnow() + timedelta(minutes=11))
    assert "the database knows no previews" in summary["orphans"]
    assert k8s.CoreV1Api(kube_api).read_namespace(orphan).status.phase == "Active"

    # The circuit breaker is open, says /metrics, until a pass sweeps cleanly again.
    def breaker() -> str:
        metrics.record_sweep(services.counters, lifecycle.removed_counts(summary), lifecycle.sweep_refused(summary))
        text = app.test_client().get("/metrics").get_data(as_text=True)
        return next(line for line in text.splitlines() if line.startswith("preview_sweep_refused "))

    assert breaker() == "preview_sweep_refused 1.0"
    k8s.CoreV1Api(kube_api).delete_namespace(orphan)
    eventually(lambda: namespace_gone(kube_api, orphan), timeout=90, what="namespace deleted")
    summary = lifecycle.run_pass(services, now=utcnow() + timedelta(minutes=11))
    assert not lifecycle.sweep_refused(summary)
    assert breaker() == "preview_sweep_refused 0.0"


def test_a_preview_whose_namespace_vanished_is_marked(client, services, kube_api):
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    ready = preview()
    k8s.CoreV1Api(kube_api).delete_namespace(ready.namespace)
    eventually(lambda: namespace_gone(kube_api, ready.namespace), timeout=90, what="namespace deleted")
    report = lifecycle.run_pass(services, now=utcnow() + timedelta(minutes=11))["orphans"]
    assert report.vanished == [ready.id]
    assert preview().state == PreviewState.DELETED


def test_a_preview_whose_build_failed_is_not_taken_for_vanished(client, services):
    """Its namespace was never made: it stays failed (its reason shown) until its failed TTL."""
    accepted = deliver(client, "pull_request_opened", "pull_request")
    configure_repository(build_pod_labels={BEHAVIOUR_LABEL: "fail"})
    assert run(services, accepted["delivery_id"]) == "failed"
    report = lifecycle.run_pass(services, now=utcnow() + timedelta(minutes=11))["orphans"]
    assert report.vanished == []
    assert preview().state == PreviewState.FAILED


@pytest.mark.parametrize("how", ["lease expired", "job lost"])
def test_a_preview_stuck_mid_deploy_is_resumed(client, services, how):
    accepted = deliver(client, "pull_request_opened", "pull_request")
    stuck = preview()
    with database.connection_context():
        if how == "lease expired":  # its worker died while deploying: it stopped renewing
            Preview.change(
                stuck.id,
                state=PreviewState.DEPLOYING,
                holds_slot=True,
                lease_owner="a-dead-worker",
                lease_expires_at=utcnow() - timedelta(seconds=1),
            )
        else:  # no lease and no progress for longer than any run: its job never ran
            Preview.change(stuck.id, now=utcnow() - timedelta(hours=2), state=PreviewState.DEPLOYING, holds_slot=True)
            services.queue.queue.empty()  # and is gone from Redis
        assert lifecycle.run_pass(services, dry_run=True)["resumed"] == [stuck.id]
    summary = lifecycle.run_pass(services)
    assert summary["resumed"] == [stuck.id]
    assert lifecycle.run_pass(services)["resumed"] == []  # once per stall
    assert queued(services, f"deploy-{stuck.id}-")
    run_queued_jobs(services)
    assert preview().state == PreviewState.READY
    assert accepted["preview_id"] == stuck.id


def test_work_still_waiting_in_the_queue_is_busy_not_stuck(client, services):
    """A backlog is not a stall: nothing is queued twice while the delivery's job still waits."""
    accepted = deliver(client, "pull_request_opened", "pull_request")
    with database.connection_context():
        Preview.change(accepted["preview_id"], now=utcnow() - timedelta(hours=2), state=PreviewState.QUEUED)
    summary = lifecycle.run_pass(services, now=utcnow() + timedelta(hours=1))
    assert summary["resumed"] == []
    assert summary["requeued"] == []
    assert services.queue.job_ids == [f"delivery-{accepted['delivery_id']}"]


def test_a_delivery_whose_job_redis_lost_is_queued_again_until_done(client, services):
    accepted = deliver(client, "pull_request_opened", "pull_request")
    services.queue.connection.flushdb()  # a Redis flush or a failover to an empty replica
    assert lifecycle.run_pass(services)["requeued"] == []  # not before STALLED_AFTER
    later = utcnow() + services.settings.stalled_after + timedelta(seconds=1)
    summary = lifecycle.run_pass(services, now=later)
    assert summary["requeued"] == [accepted["delivery_id"]]
    assert summary["resumed"] == []  # the delivery's job waits again: one job, not two
    assert services.queue.job_ids == [f"delivery-{accepted['delivery_id']}"]
    run_queued_jobs(services)
    assert preview().state == PreviewState.READY
    assert lifecycle.run_pass(services, now=later)["requeued"] == []  # carried out: out of the outbox


def test_an_approved_preview_whose_job_was_lost_is_resumed_under_a_cap(client, services):
    """Approved, it is neither waiting for approval nor in line for a slot: if its job is lost,
    it is stuck, and a cap must not hide it."""
    services.settings = services.settings.replace(max_active_previews=3)
    accepted = deliver(client, "pull_request_opened", "pull_request")
    approved = preview(accepted["preview_id"])
    with database.connection_context():
        Preview.change(
            approved.id,
            now=utcnow() - timedelta(hours=2),
            state=PreviewState.QUEUED,
            waiting_since=None,
            approved_sha=approved.head_sha,
        )
        WebhookDelivery.update(processed_at=utcnow()).execute()
    services.queue.queue.empty()
    assert lifecycle.run_pass(services)["resumed"] == [approved.id]
    assert queued(services, f"deploy-{approved.id}-")


def test_capacity_makes_new_previews_wait_in_order(client, services):
    services.settings = services.settings.replace(max_active_previews=1)
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    second = deliver(client, "pull_request_opened", "pull_request", number=13, **{"pull_request.number": 13})
    third = deliver(client, "pull_request_opened", "pull_request", number=14, **{"pull_request.number": 14})
    assert run(services, second["delivery_id"]) == "waiting"
    assert run(services, third["delivery_id"]) == "waiting"
    waiting = preview(second["preview_id"])
    assert waiting.state == PreviewState.QUEUED
    assert waiting.waiting_since is not None
    with database.connection_context():
        assert any("position 1" in e.message for e in waiting.events)
        assert any("position 2" in e.message for e in preview(third["preview_id"]).events)
    assert lifecycle.run_pass(services)["started"] == []  # no free slot yet

    run(services, deliver(client, "pull_request_closed", "pull_request")["delivery_id"])
    assert lifecycle.run_pass(services)["started"] == [second["preview_id"]]
    with database.connection_context():
        assert pipeline.deploy(services, second["preview_id"], waiting.head_sha) == "ready"
    assert preview(third["preview_id"]).state == PreviewState.QUEUED


def test_a_preview_whose_first_rollout_fails_is_gone_after_the_failed_ttl(client, services, kube_api):
    services.settings = services.settings.replace(
        failed_preview_ttl=timedelta(hours=2), rollout_timeout=timedelta(seconds=20)
    )
    opened = deliver(client, "pull_request_opened", "pull_request")
    configure_repository(pod_labels={BEHAVIOUR_LABEL: "crash-loop"})
    started = utcnow()
    assert run(services, opened["delivery_id"]) == "failed"
    failed = preview()
    assert failed.state == PreviewState.FAILED
    assert failed.holds_slot
    # It holds a namespace, so it has an expiry: the failed TTL, not the week a ready preview gets.
    assert started + timedelta(hours=2) <= failed.expires_at <= utcnow() + timedelta(hours=2)
    assert lifecycle.run_pass(services, now=failed.expires_at - timedelta(seconds=1))["expired"] == []

    assert lifecycle.run_pass(services, now=failed.expires_at + timedelta(seconds=1))["expired"] == [failed.id]
    run_queued_jobs(services)
    eventually(lambda: namespace_gone(kube_api, failed.namespace), timeout=90, what="the failed preview's namespace")
    gone = preview()
    assert gone.state == PreviewState.DELETED
    assert not gone.holds_slot


def test_processes_with_a_clock_90s_ahead_steal_no_lease_and_still_converge(client, services, kube_api):
    """Leases and expiries are written and compared by the database's clock: a scheduler whose
    own clock runs 90 s ahead neither takes a live worker's lease nor keeps re-queueing it,
    and a worker with that clock still brings a preview to ready."""
    import subprocess
    import sys
    import time

    from tests.testbed.helpers import kill_worker, start_busy_worker, worker_env

    services.settings = services.settings.replace(lease_ttl=timedelta(seconds=6))
    ahead = ["faketime", "-f", "+90s", sys.executable, "-m"]
    # The wall clock is off, as on a machine with a bad NTP; the monotonic clock (timeouts,
    # waits) is not: libfaketime's fake one never wakes Python's timed waits.
    env = {**worker_env(services.settings), "SCHEDULER_INTERVAL": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    worker, preview_id = start_busy_worker(client, services)
    scheduler = subprocess.Popen([*ahead, "workers.scheduler"], env=env, stdout=subprocess.DEVNULL)
    second = None
    try:
        owner = preview(preview_id).lease_owner
        time.sleep(5)  # five passes, each 90 s "later" than the lease's last renewal
        held = preview(preview_id)
        assert (held.state, held.lease_owner) == (PreviewState.BUILDING, owner)
        with database.connection_context():
            assert not any(event.phase == "resume" for event in held.events)

        # Its worker dies; once its lease has lapsed by the database's clock the work resumes,
        # on a worker whose clock is ahead too.
        kill_worker(worker)
        configure_repository(build_pod_labels={})
        second = subprocess.Popen([*ahead, "workers.worker"], env=env, stdout=subprocess.DEVNULL)
        eventually(lambda: preview(preview_id).state == PreviewState.READY, timeout=90, what="ready")
        with database.connection_context():
            resumes = [event for event in preview(preview_id).events if event.phase == "resume"]
        assert len(resumes) == 1
    finally:
        for process in (worker, scheduler, second):
            if process is not None:
                kill_worker(process)


def test_over_budget_new_previews_wait_and_go_when_the_budget_is_raised(client, services):
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    with database.connection_context():
        # The first preview has been up an hour; the budget is half what it spent this month
        # (whatever the day: the month may have begun less than an hour ago).
        PreviewUsage.update(started_at=utcnow() - timedelta(hours=1)).execute()
        first = preview()
        repository = first.repository.full_name
        now = utcnow()
        spent = usage.spent_by_repository(services.settings, costs.month_start(now), now, [first.repository_id])
        budgets.set_budget(repository, spent.get(first.repository_id, 0.0) / 2)
    second = deliver(client, "pull_request_opened", "pull_request", number=13, **{"pull_request.number": 13})
    assert run(services, second["delivery_id"]) == "waiting"
    held = preview(second["preview_id"])
    assert (held.state, held.holds_slot, held.namespace) == (PreviewState.QUEUED, False, None)
    assert held.budget_held_since is not None
    assert "waiting for budget" in held.report_detail
    assert "budget this month" in held.report_detail
    # A push to the preview already running still deploys: a budget stops new spending only.
    push = deliver(client, "pull_request_synchronized", "pull_request_sync")
    assert run(services, push["delivery_id"]) == "ready"
    assert lifecycle.run_pass(services)["released"] == []
    assert lifecycle.run_pass(services)["resumed"] == []  # held, not stuck

    with database.connection_context():
        budgets.set_budget(repository, 1.0)
    assert lifecycle.run_pass(services)["released"] == [held.id]
    assert len(queued(services, f"deploy-{held.id}-")) == 1
    with database.connection_context():
        assert pipeline.deploy(services, held.id, held.head_sha) == "ready"
    released = preview(held.id)
    assert (released.state, released.holds_slot, released.budget_held_since) == (PreviewState.READY, True, None)
