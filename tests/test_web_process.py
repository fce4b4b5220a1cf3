"""The web process exactly as the Procfile starts it: slow or idle clients do not hold up webhooks."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.factories import SECRET, payload, webhook_request
from tests.servers import die_with_parent, free_port, stop_process, wait_for_port
from tests.service_processes import ROOT, procfile

IDLE_CONNECTIONS = 100


@pytest.fixture
def web(settings, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "PREVIEW_QUEUE": settings.queue_name,
        "GITEA_WEBHOOK_SECRET": SECRET,
        "BIND": f"127.0.0.1:{port}",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    with open(tmp_path / "web.log", "wb") as log:
        process = subprocess.Popen(
            ["sh", "-c", f"exec {procfile()['web']}"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    try:
        wait_for_port(port, process, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process, timeout=15)


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
    assert health.status_code == 200 and hook.status_code == 202, hook.text
    assert health_seconds < 1 and hook_seconds < 1, (health_seconds, hook_seconds)
