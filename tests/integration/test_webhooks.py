"""POST /webhooks/gitea against real Redis and each database."""

import json
import os
from datetime import timedelta

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from app.adapters.jobqueue import JobQueue
from app.db import database, utcnow
from app.domain.states import DeliveryOutcome, PreviewState
from app.models import Preview, Repository, WebhookDelivery
from app.usecases.operations import board
from tests.testbed.factories import SECRET, payload, webhook_request, with_changes
from tests.testbed.helpers import (
    WEBHOOK_URL,
    all_deliveries,
    planned,
    post_and_plan,
    post_webhook,
    queued_job_ids,
    run_worker,
)


def test_signed_task_branch_push_is_stored_queued_then_planned_by_the_worker(client, settings):
    response = post_webhook(client, "push_task_branch", "push", delivery="d-1")
    assert response.status_code == 202
    assert response.json["outcome"] == DeliveryOutcome.RECEIVED
    assert response.json["queued"] is True
    [delivery] = all_deliveries()
    assert (delivery.delivery_uuid, delivery.intent, delivery.target_key) == (
        "d-1",
        "deploy",
        "acme/shop@task/login-form",
    )
    assert json.loads(delivery.body) == payload("push_task_branch")
    assert abs(delivery.received_at - utcnow()) < timedelta(seconds=30)
    assert queued_job_ids(settings) == [f"delivery-{delivery.id}"]
    with database.connection_context():
        assert Preview.select().count() == 0  # planning is the worker's

    assert planned(client, response.json)["outcome"] == DeliveryOutcome.ACCEPTED
    [delivery] = all_deliveries()
    assert delivery.body is None  # kept only until it is planned
    with database.connection_context():
        preview = Preview.get()
        assert (preview.state, preview.head_sha, preview.pr_number) == (
            PreviewState.QUEUED,
            payload("push_task_branch")["after"],
            None,
        )
        assert delivery.preview_id == preview.id


def test_a_delivery_id_seen_before_is_a_duplicate_at_once(client, settings):
    first = post_webhook(client, "pull_request_opened", "pull_request", delivery="uuid-1")
    again = post_webhook(client, "pull_request_opened", "pull_request", delivery="uuid-1")
    assert again.status_code == 202
    assert (again.json["outcome"], again.json["delivery_id"]) == (DeliveryOutcome.DUPLICATE, first.json["delivery_id"])
    assert again.json["queued"] is False
    assert [d.delivery_uuid for d in all_deliveries()] == ["uuid-1"]
    assert queued_job_ids(settings) == [f"delivery-{all_deliveries()[0].id}"]


@pytest.mark.parametrize(
    "signing",
    [{"secret": None}, {"secret": "wrong-secret"}, "empty", "tampered", "non-ascii"],
    ids=["unsigned", "wrong-secret", "empty-signature", "tampered-body", "non-ascii-signature"],
)
def test_bad_signatures_are_refused_and_nothing_is_stored(client, settings, signing):
    request = webhook_request(
        payload("pull_request_opened"), "pull_request", **(signing if isinstance(signing, dict) else {})
    )
    if signing == "empty":
        request["headers"]["X-Gitea-Signature"] = ""
    if signing == "non-ascii":
        request["headers"]["X-Gitea-Signature"] = "é" * 64
    if signing == "tampered":
        request["data"] = request["data"].replace(b'"number": 12', b'"number": 13')
    response = client.post(WEBHOOK_URL, **request)
    assert response.status_code == 401
    assert all_deliveries() == []
    assert queued_job_ids(settings) == []


def test_oversized_body_is_refused(client):
    body = with_changes(payload("push_task_branch"), padding="x" * (5 * 1024 * 1024))
    response = post_webhook(client, None, "push", body=body)
    assert response.status_code == 413
    assert all_deliveries() == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "the body is not valid JSON"),
        (b"[]", "the body is not a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "the body is not valid JSON"),  # past the parser's recursion limit
        (
            json.dumps(with_changes(payload("pull_request_opened"), **{"pull_request.head": None})).encode(),
            "missing field pull_request.head.ref",
        ),
    ],
)
def test_malformed_bodies_get_400_saying_why(client, raw, message):
    response = client.post(WEBHOOK_URL, **webhook_request(raw, "pull_request"))
    assert response.status_code == 400
    assert response.json["error"] == message
    assert all_deliveries() == []


def test_missing_delivery_header_is_a_400(client):
    request = webhook_request(payload("push_task_branch"), "push")
    del request["headers"]["X-Gitea-Delivery"]
    assert client.post(WEBHOOK_URL, **request).status_code == 400


def test_unknown_events_are_recorded_as_ignored(client, settings):
    response = post_webhook(client, "issue_comment", "release")
    assert response.status_code == 202
    assert response.json["outcome"] == DeliveryOutcome.IGNORED
    [delivery] = all_deliveries()
    assert delivery.event_type == "release"
    assert "not acted on" in delivery.reason
    assert queued_job_ids(settings) == []


def test_a_pr_comment_that_is_no_command_is_recorded_as_ignored(client, settings):
    response = post_webhook(client, "issue_comment", "pull_request_comment")
    assert response.status_code == 202
    assert response.json["outcome"] == DeliveryOutcome.IGNORED
    assert "asks nothing" in all_deliveries()[0].reason
    assert queued_job_ids(settings) == []


def test_a_redelivery_with_a_new_uuid_is_planned_as_a_duplicate(client):
    """Gitea's "Redeliver" sends the same body under a new id: only planning can tell."""
    first = post_and_plan(client, "pull_request_opened", "pull_request", delivery="uuid-1")
    again = post_and_plan(client, "pull_request_opened", "pull_request", delivery="uuid-2")
    assert first["outcome"] == DeliveryOutcome.ACCEPTED
    assert (again["outcome"], again["reason"]) == (DeliveryOutcome.DUPLICATE, "the same work was already accepted")
    assert again["preview_id"] is None
    assert [d.delivery_uuid for d in all_deliveries()] == ["uuid-1", "uuid-2"]


def test_an_older_delivery_planned_after_a_newer_one_changes_nothing(client):
    """Two workers may take a PR's two pushes in either order: the newer desired state stands."""
    older = post_webhook(client, "pull_request_opened", "pull_request").json
    newer = post_webhook(client, "pull_request_synchronized", "pull_request_sync").json
    assert planned(client, newer)["outcome"] == DeliveryOutcome.ACCEPTED
    late = planned(client, older)
    assert late["outcome"] == DeliveryOutcome.SUPERSEDED
    with database.connection_context():
        assert Preview.get().head_sha == payload("pull_request_synchronized")["pull_request"]["head"]["sha"]


def test_a_commit_seen_before_is_new_work_unless_it_is_the_last_work(client):
    """A force-push back to the first commit looks like a stale redelivery of its push; only
    Gitea can tell them apart, and the worker asks it. A redelivery of the last work is a duplicate."""
    opened = payload("pull_request_opened")
    post_and_plan(client, "pull_request_opened", "pull_request")
    post_and_plan(client, "pull_request_synchronized", "pull_request_sync")
    back = with_changes(
        payload("pull_request_synchronized"), **{"pull_request.head.sha": opened["pull_request"]["head"]["sha"]}
    )
    assert post_and_plan(client, None, "pull_request_sync", body=back)["outcome"] == DeliveryOutcome.ACCEPTED
    assert post_and_plan(client, None, "pull_request_sync", body=back)["outcome"] == DeliveryOutcome.DUPLICATE
    with database.connection_context():
        assert Preview.get().head_sha == opened["pull_request"]["head"]["sha"]


def test_push_to_a_pr_branch_does_not_build_twice(client):
    opened = with_changes(payload("pull_request_opened"), **{"pull_request.head.ref": "task/login-form"})
    post_and_plan(client, None, "pull_request", body=opened)
    pushed = post_and_plan(client, "push_task_branch", "push")
    assert pushed["outcome"] == DeliveryOutcome.IGNORED
    assert "open pull request #12" in pushed["reason"]
    assert [d.intent for d in all_deliveries()] == ["deploy", None]
    with database.connection_context():
        assert Preview.select().count() == 1


def test_close_wants_teardown_once_and_reopen_brings_a_fresh_preview(client, settings):
    post_and_plan(client, "pull_request_opened", "pull_request")
    closed = post_and_plan(client, "pull_request_closed", "pull_request")
    assert closed["outcome"] == DeliveryOutcome.ACCEPTED
    with database.connection_context():
        assert Preview.get().state == PreviewState.DELETING
    assert post_and_plan(client, "pull_request_closed", "pull_request")["outcome"] == DeliveryOutcome.DUPLICATE
    reopened = post_and_plan(client, "pull_request_reopened", "pull_request")
    assert reopened["outcome"] == DeliveryOutcome.ACCEPTED
    closed_again = post_and_plan(client, "pull_request_closed", "pull_request")
    assert closed_again["outcome"] == DeliveryOutcome.ACCEPTED
    assert len(queued_job_ids(settings)) == 5  # each is queued: the worker plans the duplicate to nothing
    with database.connection_context():
        assert Preview.select().count() == 1


def test_teardown_without_a_preview_is_ignored(client):
    closed = post_and_plan(client, "pull_request_closed_merged", "pull_request")
    assert closed["outcome"] == DeliveryOutcome.IGNORED
    assert "no live preview" in closed["reason"]
    with database.connection_context():
        assert Preview.select().count() == 0


def test_without_a_shared_secret_only_registered_repositories_are_heard(app, settings):
    from app import create_app

    unshared = create_app(settings.replace(gitea_webhook_secret=None))
    response = unshared.test_client().post(WEBHOOK_URL, **webhook_request(payload("push_task_branch"), "push"))
    assert response.status_code == 404
    assert "not registered" in response.json["error"]
    with database.connection_context():
        assert WebhookDelivery.select().count() == 0
    # Counted, and only counted.
    scraped = unshared.test_client().get("/metrics").get_data(as_text=True)
    assert 'preview_webhooks_refused_total{reason="unregistered"} 1.0' in scraped


def register_with_secret(full_name, secret):
    with database.connection_context():
        Repository.create(full_name=full_name, clone_url=f"http://git/{full_name}.git", webhook_secret=secret)


def test_a_body_signed_with_one_repositorys_secret_cannot_speak_for_another(client, settings):
    secret_a, secret_b = "secret-of-repository-a", "secret-of-repository-b"
    register_with_secret("acme/blog", secret_a)
    register_with_secret("acme/shop", secret_b)  # the payloads name acme/shop
    opened = post_and_plan(client, "pull_request_opened", "pull_request", secret=secret_b)
    assert opened["outcome"] == DeliveryOutcome.ACCEPTED
    with database.connection_context():
        before = (Preview.get().state, Preview.get().head_sha, WebhookDelivery.select().count())

    closed = with_changes(payload("pull_request_closed"))
    for secret in (
        secret_a,
        SECRET,
    ):  # another repository's secret, and the shared one: a registered repository has its own
        response = post_webhook(client, None, "pull_request", body=closed, secret=secret)
        assert response.status_code == 401
    # Case does not help either: Gitea's names ignore it.
    shouting = with_changes(closed, **{"repository.full_name": "ACME/SHOP"})
    assert post_webhook(client, None, "pull_request", body=shouting, secret=secret_a).status_code == 401
    with database.connection_context():
        assert (Preview.get().state, Preview.get().head_sha, WebhookDelivery.select().count()) == before


def test_deleting_a_task_branch_wants_its_teardown(client, settings):
    post_and_plan(client, "push_task_branch", "push")
    deleted = post_and_plan(client, "delete_task_branch", "delete")
    assert deleted["outcome"] == DeliveryOutcome.ACCEPTED
    with database.connection_context():
        assert Preview.get().state == PreviewState.DELETING
    assert post_and_plan(client, "delete_task_branch", "delete")["outcome"] == DeliveryOutcome.DUPLICATE


def test_a_label_change_never_asks_for_a_teardown(client, settings):
    post_and_plan(client, "pull_request_opened", "pull_request")
    labelled = with_changes(
        payload("pull_request_label_updated"), **{"pull_request.labels": [{"name": "preview:keep"}]}
    )
    label_event = post_and_plan(client, None, "pull_request_label", body=labelled)
    assert label_event["outcome"] == DeliveryOutcome.IGNORED
    assert "pin follows the payload" in label_event["reason"]
    with database.connection_context():
        assert Preview.get().state == PreviewState.QUEUED
        assert Preview.get().pinned


def test_a_job_written_to_redis_by_someone_else_runs_no_code(settings, tmp_path):
    """Whoever can write to Redis (the web process too) cannot make a worker run code: a pickled
    job is never unpickled, and a JSON job naming any function but ours is refused."""
    from rq.job import Job

    queue = JobQueue(settings.redis_url, settings.queue_name)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    pickled = Queue(settings.queue_name, connection=queue.connection)  # RQ's default: pickle
    pickled.enqueue("workers.jobs.report_preview", Payload(), job_id="pickled")
    # A JSON job naming a function of the standard library.
    queue.queue.enqueue("os.system", f"touch {marker}", job_id="foreign")
    run_worker(settings)
    assert not marker.exists()
    foreign = Job.fetch("foreign", connection=queue.connection, serializer=JSONSerializer)
    assert foreign.get_status() == "failed"
    assert "UnknownJob" in (foreign.latest_result().exc_string or "")


def test_the_shared_secret_never_speaks_for_a_registered_repository_in_another_letter_case(client, settings):
    with database.connection_context():  # a row an older release stored from a shared-secret delivery
        Repository.create(full_name="ACME/Shop", clone_url="http://git/ACME/Shop.git")
    register_with_secret("acme/shop", "secret-of-the-shop-0123")
    for claimed in ("acme/shop", "ACME/Shop", "Acme/SHOP"):
        body = with_changes(payload("pull_request_opened"), **{"repository.full_name": claimed})
        refused = client.post(WEBHOOK_URL, **webhook_request(body, "pull_request"))  # the shared secret
        assert refused.status_code == 401, claimed
    with database.connection_context():
        assert WebhookDelivery.select().count() == 0


def test_two_installations_on_one_redis_do_not_share_job_ids(settings):
    """Job ids are global to a Redis server: another queue's `delivery-1` is not this one's."""
    mine = JobQueue(settings.redis_url, settings.queue_name)
    theirs = JobQueue(settings.redis_url, settings.queue_name + "-other")
    assert mine.enqueue("workers.jobs.process_delivery", 1, job_id="delivery-1")
    assert theirs.enqueue("workers.jobs.process_delivery", 1, job_id="delivery-1")
    assert not mine.enqueue("workers.jobs.process_delivery", 1, job_id="delivery-1")  # still one per queue
    assert mine.job_ids == ["delivery-1"]
    assert theirs.job_ids == ["delivery-1"]
    theirs.queue.empty()


def test_jobs_run_no_longer_than_the_settings_allow(settings):
    """RQ stops a job after JOB timeout (a build and two rollouts): a hung job frees its preview."""
    from app.bootstrap import bootstrap

    settings = settings.replace(build_timeout=timedelta(minutes=7), rollout_timeout=timedelta(minutes=2))
    queue = bootstrap(settings).queue
    assert queue.enqueue("workers.jobs.report_preview", 1, job_id="timed")
    job = queue.queue.fetch_job(queue.prefix + "timed")
    assert job.timeout == int(settings.job_timeout.total_seconds()) == 21 * 60
    queue.queue.empty()


def test_a_webhook_while_the_database_is_down_is_answered_503(settings):
    """Not a 500: Gitea shows the failed delivery to redeliver, and the answer says why."""
    from app import create_app
    from tests.testbed.servers import free_port

    down = settings.replace(database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/previews")
    client = create_app(down).test_client()
    response = client.post("/webhooks/gitea", **webhook_request(payload("pull_request_opened"), "pull_request"))
    assert response.status_code == 503
    assert response.json == {"error": "the service's database is unavailable; try again shortly"}
    assert response.headers["Retry-After"] == "10"


def test_a_delivery_whose_secret_changed_before_it_was_planned_is_refused(client):
    """Intake knows the secrets from a few seconds ago; the worker checks the signature again
    against the database before it plans anything."""
    register_with_secret("acme/shop", "secret-before")
    received = post_webhook(client, "pull_request_opened", "pull_request", secret="secret-before").json
    with database.connection_context():
        Repository.update(webhook_secret="secret-after").execute()  # rotated (or the repository removed)
    refused = planned(client, received)
    assert (refused["outcome"], refused["preview_id"]) == (DeliveryOutcome.REFUSED, None)
    assert "does not match the repository's secret" in refused["reason"]
    with database.connection_context():
        assert Preview.select().count() == 0
    assert all_deliveries()[0].body is None


def test_a_delivery_whose_worker_died_before_planning_it_is_queued_again(client, settings):
    """Its job still counts as running in Redis (RQ notices a dead worker only at the job's
    timeout), but planning takes a worker moments: long unplanned, the job is taken as lost. A
    planned delivery's running job is left alone: its preview's lease covers it."""
    from rq.job import JobStatus

    from app.usecases.intake import accept

    queue = JobQueue(settings.redis_url, settings.queue_name)
    unplanned = post_webhook(client, "pull_request_opened", "pull_request").json["delivery_id"]
    planned_id = post_and_plan(client, "push_task_branch", "push")["delivery_id"]
    for delivery_id in (unplanned, planned_id):
        job = queue.queue.fetch_job(queue.prefix + f"delivery-{delivery_id}")
        job.set_status(JobStatus.STARTED)  # as a worker killed in the middle of it leaves it
    now = utcnow()
    with database.connection_context():
        assert accept.requeue_unfinished(queue, now, stalled_before=now - timedelta(minutes=1)) == []
        assert accept.requeue_unfinished(
            queue, now + timedelta(seconds=1), stalled_before=now + timedelta(seconds=1)
        ) == [unplanned]
    assert queue.queue.fetch_job(queue.prefix + f"delivery-{unplanned}").get_status() == JobStatus.QUEUED
    queue.queue.empty()


def test_the_dashboards_mine_shows_the_previews_of_the_prs_and_pushes_the_user_sent(client, settings):
    bobs = with_changes(payload("pull_request_opened"), sender={"login": "bob"})
    alices = with_changes(payload("pull_request_opened"), number=13, sender={"login": "alice"})
    carols = with_changes(payload("push_task_branch"), sender={"login": "carol"})
    for body, kind in ((bobs, "pull_request"), (alices, "pull_request"), (carols, "push")):
        assert post_and_plan(client, None, kind, body=body)["outcome"] == DeliveryOutcome.ACCEPTED
    with database.connection_context():

        def mine(login):
            shown = board.list_cards(settings, ["acme/shop"], utcnow(), mine=login)
            return sorted(str(card["pr_number"] or card["branch"]) for card in shown)

        assert mine("bob") == ["12"]
        assert mine("alice") == ["13"]
        assert mine("carol") == ["task/login-form"]
        assert mine("dave") == []
        assert len(mine(None)) == 3
