"""The web process exactly as the Procfile starts it: slow or idle clients do not hold up webhooks."""

import os
import socket
import time

import pytest
import requests

from tests.testbed.factories import SECRET, payload, webhook_request
from tests.testbed.servers import free_port
from tests.testbed.service_processes import service_processes

IDLE_CONNECTIONS = 100


@pytest.fixture
def web(settings, tmp_path):
    """The Procfile's web process alone."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "PREVIEW_QUEUE": settings.queue_name,
        "GITEA_WEBHOOK_SECRET": SECRET,
    }
    with service_processes(env, tmp_path, port, web_only=True):
        yield f"http://127.0.0.1:{port}"


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_a_hundred_idle_connections_do_not_delay_a_webhook(web, db):
    host, port = web.removeprefix("http://").split(":")
    requests.get(f"{web}/healthz", timeout=10)  # the first answers also open connections to Redis and the database
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(IDLE_CONNECTIONS)]
    try:
        time.sleep(0.5)  # every one of them accepted and waiting for a request that never comes
        health, health_seconds = timed(lambda: requests.get(f"{web}/healthz", timeout=10))
        body = payload("pull_request_opened")
        hook, hook_seconds = timed(
            lambda: requests.post(f"{web}/webhooks/gitea", timeout=10, **webhook_request(body, "pull_request"))
        )
    finally:
        for connection in idle:
            connection.close()
    assert health.status_code == 200, hook.text
    assert hook.status_code == 202, hook.text
    assert health_seconds < 1, (health_seconds, hook_seconds)
    assert hook_seconds < 1, (health_seconds, hook_seconds)
