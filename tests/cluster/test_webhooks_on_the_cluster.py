"""Webhooks carried through to the cluster: nothing accepted is lost while Redis is down, and a
job run twice processes its delivery once."""

import time
from datetime import timedelta

import pytest
from rq import Queue

from app.db import database, utcnow
from app.domain.states import PreviewState
from app.models import Event, Preview, WebhookDelivery
from app.usecases.operations import lifecycle
from tests.testbed.helpers import all_deliveries, post_webhook, queued_job_ids, run_worker


@pytest.mark.kube
def test_nothing_accepted_is_lost_while_redis_is_down(client, services, redis_server):
    settings = services.settings
    redis_server.stop()
    try:
        started = time.monotonic()
        response = post_webhook(client, "pull_request_opened", "pull_request")
        elapsed = time.monotonic() - started
        assert response.status_code == 202
        assert response.json["queued"] is False
        assert elapsed < 5, "Gitea gives up after 5 s"  # the contract, not a benchmark
        post_webhook(client, "push_task_branch", "push")
        assert client.get("/readyz").json == {"status": "unavailable", "failing": ["redis"]}
        queue = services.queue
        later = utcnow() + lifecycle.DELIVERY_QUEUE_GRACE + timedelta(seconds=1)
        assert lifecycle.run_pass(services, now=later)["requeued"] == []
        with database.connection_context():
            assert len(WebhookDelivery.unfinished(later)) == 2
    finally:
        redis_server.start()

    assert lifecycle.run_pass(services)["requeued"] == []  # within the grace: the web may still queue them
    assert len(lifecycle.run_pass(services, now=later)["requeued"]) == 2
    assert lifecycle.run_pass(services, now=later)["requeued"] == []  # waiting in the queue now
    assert len(queued_job_ids(settings)) == 2

    run_worker(settings)
    run_worker(settings)  # a second worker finds nothing left to do
    assert all(d.processed_at is not None for d in all_deliveries())
    assert Queue(settings.queue_name, connection=queue.connection).count == 0
    with database.connection_context():
        processed_events = Event.select().where(Event.phase == "delivery").order_by(Event.id)
        assert sorted(e.message for e in processed_events) == [
            f"delivery {d.id} (deploy) ready" for d in all_deliveries()
        ]
        assert {p.state for p in Preview.select()} == {PreviewState.READY}


@pytest.mark.kube
def test_a_job_run_twice_processes_its_delivery_once(client, services):
    from app.usecases.intake.deliveries import process_delivery

    post_webhook(client, "push_task_branch", "push")
    [delivery] = all_deliveries()
    with database.connection_context():
        assert process_delivery(services, delivery.id) == "ready"
        assert process_delivery(services, delivery.id) == "skipped"
        assert Event.select().where(Event.phase == "delivery").count() == 1
        assert Event.select().where(Event.phase == "build").count() == 1
