"""Fixtures that start the real components: Redis, PostgreSQL (and SQLite files)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import redis

from app import create_app
from app.db import database
from app.migrations import apply_migrations
from app.settings import Settings
from tests.testbed import interrupts, servers
from tests.testbed.factories import SECRET

_database_numbers = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped with SIGTERM ends like one stopped with Ctrl-C: the servers and the real
    node go with it instead of outliving the run."""
    interrupts.stop_like_ctrl_c()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.RedisServer]:
    with servers.redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.PostgresServer]:
    with servers.postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[servers.MariaDBServer]:
    """A shared MySQL-compatible server for preview databases (the service's own stays PostgreSQL/SQLite)."""
    with servers.mariadb_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/preview.db"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"test_{next(_database_numbers)}")


@pytest.fixture
def redis_url(redis_server: servers.RedisServer) -> str:
    if redis_server.process.poll() is not None:  # a test stopped it and failed before restarting
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url


@pytest.fixture
def settings(database_url: str, redis_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        gitea_webhook_secret=SECRET,
        queue_name="previews-test",
        # Most tests' repositories have no registry Secret of their own.
        registry_shared_fallback=True,
        metrics_open=True,
    )


@pytest.fixture
def app(settings: Settings):
    app = create_app(settings)
    with database.connection_context():
        apply_migrations(database.obj)
    yield app
    if not database.is_closed():
        database.close()
    database.obj.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db(app) -> Iterator[None]:
    """A connection to the app's migrated database for the test body."""
    with database.connection_context():
        yield


@pytest.fixture(scope="session")
def kube_cluster():
    """The real control plane (etcd, apiserver, controller-manager, scheduler, KWOK) for the session."""
    from tests.testbed.kube.controlplane import control_plane

    with control_plane() as plane:
        yield plane


@pytest.fixture(scope="session")
def real_node():
    """The real node and its own control plane (tests/testbed/node/node.py), for the session."""
    from tests.testbed.node.node import real_node

    with real_node() as node:
        yield node


@pytest.fixture
def kube_api(kube_cluster):
    from kubernetes import client

    api = client.ApiClient(kube_cluster.client_configuration())
    yield api
    api.close()


@pytest.fixture
def kube_namespace(kube_api, request):
    """A fresh namespace for one test, deleted afterwards."""
    from kubernetes import client

    from tests.testbed.kube.waiting import unique_name

    name = unique_name(request.node.name)
    core = client.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def kube_settings(settings, kube_cluster, kube_api):
    """Settings for tests that deploy previews on the test control plane.

    Afterwards every namespace the test's previews created is deleted and awaited,
    so the next test starts from a clean cluster.
    """
    from kubernetes import client

    from tests.testbed.kube.waiting import eventually, unique_name

    yield settings.replace(
        kubeconfig=str(kube_cluster.kubeconfig),
        preview_registry="registry.preview.test:5000",
        build_namespace=unique_name("builds"),
    )
    core = client.CoreV1Api(kube_api)
    selector = "app.kubernetes.io/managed-by=gitea-previews"
    for namespace in core.list_namespace(label_selector=selector).items:
        if not namespace.metadata.deletion_timestamp:
            core.delete_namespace(namespace.metadata.name)
    eventually(
        lambda: not core.list_namespace(label_selector=selector).items, timeout=120, what="preview namespaces deleted"
    )


@pytest.fixture
def services(app, kube_settings):
    """The pipeline's adapters, on the real control plane; no Gitea (NoGitea) unless a test adds one."""
    from app.adapters.kube import Kube, load_configuration
    from app.bootstrap import bootstrap

    kube = Kube(load_configuration(kube_settings.kubeconfig))
    yield bootstrap(kube_settings, kube=kube)
    kube.close()


@pytest.fixture(scope="session")
def gitea():
    """A real Gitea (SQLite) with an admin and the service's bot user and token."""
    from tests.testbed.gitea_server import gitea_server

    with gitea_server() as server:
        yield server


@pytest.fixture
def browser():
    """Debian's Chromium, headless, through playwright (the sign-in and dashboard tests)."""
    import os

    from playwright.sync_api import sync_playwright

    from tests.testbed.browser import CHROMIUM

    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed: `make deps` installs it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield launched
        launched.close()
