"""Idle previews sleep and wake on a visit, on the real control plane (KWOK runs the pods).

The data plane's side (Traefik sending a sleeping preview's host to the web, the password
in front) is tested on the real node: tests/e2e/test_real_node.py."""

import base64
from dataclasses import replace
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from app import create_app
from app.db import database, utcnow
from app.domain.k8s import wake
from app.domain.naming import AUTH_SECRET
from app.domain.states import PreviewState
from app.migrations import apply_migrations
from app.models import Event, Preview, PreviewUsage
from app.usecases.deploy import sleeping
from app.usecases.operations import lifecycle
from app.usecases.operations.views import views
from tests.testbed.helpers import deliver, run

pytestmark = pytest.mark.kube

WAKE_ADDRESS, WAKE_PORT = "10.0.0.7", 8000
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.fixture
def settings(settings):
    # Nothing serves these metrics: the scheduler's `visited` step fails and is logged, and
    # the tests set idleness themselves.
    # One slot: a wake must find it free (the last test takes it first).
    return settings.replace(
        traffic_metrics_url="http://127.0.0.1:9/metrics", wake_endpoint=(WAKE_ADDRESS, WAKE_PORT), max_active_previews=1
    )


@pytest.fixture
def app(kube_settings):
    """The web on the control plane: it reads a preview's password to check a wake."""
    web = create_app(kube_settings)
    with database.connection_context():
        apply_migrations(database.obj)
    yield web
    if not database.is_closed():
        database.close()


def preview(preview_id=None):
    with database.connection_context():
        return Preview.get_by_id(preview_id) if preview_id else Preview.get()


def make_idle(preview_id):
    with database.connection_context():
        Preview.update(ready_since=utcnow() - timedelta(minutes=31)).where(Preview.id == preview_id).execute()


def asleep(services, preview_id):
    make_idle(preview_id)
    with database.connection_context():
        return sleeping.put_to_sleep(services, preview_id)


def app_deployment(kube_api, found):
    [deployment] = k8s.AppsV1Api(kube_api).list_namespaced_deployment(found.namespace).items
    return deployment


def wake_slice(kube_api, namespace):
    try:
        return k8s.DiscoveryV1Api(kube_api).read_namespaced_endpoint_slice(wake.WAKE_SLICE, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def authorization(services, found):
    secret = services.kube.read_secret_data(found.namespace, AUTH_SECRET)
    token = base64.b64encode(f"{secret['username']}:{secret['password']}".encode()).decode()
    return f"Basic {token}"


def visit(client, found, method="GET", **headers):
    host = urlsplit(found.url).hostname
    return client.open("/some/page", method=method, headers={"Host": host, **headers})


def test_an_idle_preview_sleeps_and_a_visit_with_its_password_wakes_it(client, services, kube_api):
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    ready = preview()
    assert (ready.idle_after_seconds, ready.holds_slot) == (1800, True)
    assert lifecycle.run_pass(services)["slept"] == []  # just deployed: not idle

    make_idle(ready.id)
    assert lifecycle.run_pass(services)["slept"] == [ready.id]
    assert [j for j in services.queue.job_ids if j.startswith(f"sleep_preview-{ready.id}-")]
    with database.connection_context():
        assert sleeping.put_to_sleep(services, ready.id) == "asleep"
    slept = preview()
    assert (slept.state, slept.holds_slot) == (PreviewState.SLEEPING, False)
    assert slept.wake_endpoint == f"{WAKE_ADDRESS}:{WAKE_PORT}"
    assert lifecycle.run_pass(services)["slept"] == []  # asleep, and its route leads to today's address
    with database.connection_context():
        assert (
            PreviewUsage.select().where(PreviewUsage.preview == ready.id, PreviewUsage.ended_at.is_null()).count() == 0
        )
    deployment = app_deployment(kube_api, slept)
    assert deployment.spec.replicas == 0
    assert deployment.metadata.annotations[wake.AWAKE_REPLICAS] == "1"
    found = wake_slice(kube_api, slept.namespace)
    assert found.metadata.labels["kubernetes.io/service-name"] == deployment.metadata.name
    assert [e.addresses for e in found.endpoints] == [[WAKE_ADDRESS]]
    assert [(p.name, p.port) for p in found.ports] == [("http", WAKE_PORT)]

    # The service's own pages are untouched; the preview's host answers with the wake page.
    assert client.get("/healthz").status_code == 200
    with database.connection_context():
        shown = views([Preview.get_by_id(slept.id)])[0].to_dict()
    assert (shown["state"], shown["slept_at"] is not None) == ("sleeping", True)
    password = authorization(services, slept)
    assert visit(client, slept).status_code == 401
    wrong = "Basic " + base64.b64encode(b"preview:not-the-password").decode()
    assert visit(client, slept, Authorization=wrong, **{"User-Agent": BROWSER}).status_code == 401
    assert visit(client, slept, method="HEAD", Authorization=password, **{"User-Agent": BROWSER}).status_code == 503
    bot = visit(client, slept, Authorization=password, **{"User-Agent": "Slackbot-LinkExpanding 1.0"})
    assert b"asleep" in bot.data
    assert preview().wake_requested_at is None
    assert not [j for j in services.queue.job_ids if j.startswith(f"wake_preview-{ready.id}-")]

    page = visit(client, slept, Authorization=password, **{"User-Agent": BROWSER})
    assert page.status_code == 503
    assert b"waking up" in page.data
    assert b'http-equiv="refresh"' in page.data
    assert page.headers["Cache-Control"] == "no-store"
    assert preview().wake_requested_at is not None
    assert [j for j in services.queue.job_ids if j.startswith(f"wake_preview-{ready.id}-")]

    with database.connection_context():
        assert sleeping.wake_up(services, ready.id) == "awake"
    woken = preview()
    assert (woken.state, woken.holds_slot, woken.slept_at, woken.wake_requested_at) == (
        PreviewState.READY,
        True,
        None,
        None,
    )
    assert woken.ready_since > slept.ready_since
    deployment = app_deployment(kube_api, woken)
    assert deployment.spec.replicas == 1
    assert wake.AWAKE_REPLICAS not in (deployment.metadata.annotations or {})
    assert wake_slice(kube_api, woken.namespace) is None
    with database.connection_context():
        assert (
            PreviewUsage.select().where(PreviewUsage.preview == ready.id, PreviewUsage.ended_at.is_null()).count() == 1
        )


def test_a_push_to_a_sleeping_preview_deploys_it_awake(client, services, kube_api):
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    first = preview()
    assert asleep(services, first.id) == "asleep"
    assert run(services, deliver(client, "pull_request_synchronized", "pull_request_sync")["delivery_id"]) == "ready"
    pushed = preview()
    assert (pushed.state, pushed.slept_at, pushed.holds_slot) == (PreviewState.READY, None, True)
    assert pushed.deployed_sha != first.deployed_sha
    assert app_deployment(kube_api, pushed).spec.replicas == 1
    assert wake_slice(kube_api, pushed.namespace) is None
    # A sleep job queued before the push finds it visited (freshly ready), not idle.
    with database.connection_context():
        assert sleeping.put_to_sleep(services, pushed.id) == "visited"


def test_a_wake_without_a_free_slot_waits_and_says_so(client, services, kube_api):
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    first = preview()
    assert asleep(services, first.id) == "asleep"
    second = deliver(client, "pull_request_opened", "pull_request", number=13, **{"pull_request.number": 13})
    assert run(services, second["delivery_id"]) == "ready"  # the sleeping preview's slot was free

    page = visit(client, first, Authorization=authorization(services, first), **{"User-Agent": BROWSER})
    assert page.status_code == 503
    with database.connection_context():
        assert sleeping.wake_up(services, first.id) == "waiting"
        news = Event.select().where(Event.preview == first.id, Event.phase == "wake").order_by(Event.id.desc()).first()
    assert "waiting for a free slot (1 previews running), position 1" in news.message
    assert preview(first.id).state == PreviewState.SLEEPING
    again = visit(client, first, Authorization=authorization(services, first), **{"User-Agent": BROWSER})
    assert b"waiting for a free slot" in again.data
    assert app_deployment(kube_api, preview(first.id)).spec.replicas == 0


def test_what_sleeps_follows_the_settings_when_they_change(client, services, kube_api):
    run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"])
    slept = preview()
    assert asleep(services, slept.id) == "asleep"
    # WAKE_ENDPOINT moved: the sleep job gives the route the new address.
    moved = services.settings.replace(wake_endpoint=("10.0.0.8", 8080))
    with database.connection_context():
        assert sleeping.send_to_sleep(services.queue, moved, utcnow()) == [slept.id]
        assert sleeping.put_to_sleep(replace(services, settings=moved), slept.id) == "asleep"
        assert sleeping.send_to_sleep(services.queue, moved, utcnow()) == []
    found = wake_slice(kube_api, slept.namespace)
    assert [(e.addresses, found.ports[0].port) for e in found.endpoints] == [(["10.0.0.8"], 8080)]
    # Sleeping switched off: nothing could wake it any more, so the scheduler wakes it.
    off = services.settings.replace(wake_endpoint=None)
    assert lifecycle.run_pass(replace(services, settings=off))["woken"] == [slept.id]
    assert "slept" not in lifecycle.run_pass(replace(services, settings=off))
    with database.connection_context():
        assert sleeping.wake_up(replace(services, settings=off), slept.id) == "awake"
    assert preview().state == PreviewState.READY
    assert wake_slice(kube_api, slept.namespace) is None
