"""The MCP server with the SDK's own client, over stdio and streamable HTTP, against the real
stack: the Procfile's processes (web, worker, scheduler, mcp) on PostgreSQL, Redis, the
test control plane and the real Gitea, where the task's branch is pushed."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid

import anyio
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from tests.testbed.gitea_repo import create_repository
from tests.testbed.servers import free_port, wait_for_port
from tests.testbed.service_processes import ROOT, SecretEnv, service_processes

pytestmark = [pytest.mark.kube, pytest.mark.gitea, pytest.mark.slow]

TOKEN = "mcp-admin-token-" + uuid.uuid4().hex
TOOLS = {
    "trigger_preview_deploy",
    "get_preview",
    "list_previews",
    "get_preview_logs",
    "delete_preview",
    "get_preview_credentials",
}


@pytest.fixture(scope="module")
def stack(gitea, kube_cluster, redis_server, postgres_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mcp")
    port, mcp_port = free_port(), free_port()
    env = {
        "DATABASE_URL": postgres_server.create_database(f"mcp_{uuid.uuid4().hex[:8]}"),
        "REDIS_URL": redis_server.url,
        "PREVIEW_QUEUE": f"mcp-{uuid.uuid4().hex[:8]}",
        "GITEA_URL": gitea.url,
        "GITEA_TOKEN": gitea.bot_token,
        "GITEA_WEBHOOK_SECRET": "mcp-webhook-secret-" + uuid.uuid4().hex[:8],
        "KUBECONFIG": str(kube_cluster.kubeconfig),
        "PREVIEW_REGISTRY": "registry.preview.test:5000",
        "REGISTRY_SHARED_FALLBACK": "true",
        "PREVIEW_DOMAIN": "preview.test",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "API_TOKENS": TOKEN,
        "MCP_BIND": f"127.0.0.1:{mcp_port}",
    }
    with service_processes(env, folder, port, with_mcp=True) as processes:
        wait_for_port(mcp_port, processes["mcp"], timeout=60)
        yield {"env": SecretEnv(env), "mcp_url": f"http://127.0.0.1:{mcp_port}/mcp"}


@pytest.fixture
def task(gitea, stack, tmp_path):
    """A repository with a pushed task branch task/<id>."""
    repo = create_repository(gitea, f"mcp-{uuid.uuid4().hex[:6]}", tmp_path / "work")
    task_id = f"T{uuid.uuid4().hex[:6]}"
    repo.commit(f"task/{task_id}", {"task.txt": task_id}, "work on the task")
    return repo, task_id


def stdio_session(stack, token=TOKEN):
    env = {**stack["env"], "PREVIEW_MCP_TOKEN": token, "PATH": f"{sys.prefix}/bin:/usr/bin:/bin"}
    return stdio_client(StdioServerParameters(command=sys.executable, args=["-m", "app.mcp"], env=env, cwd=str(ROOT)))


@contextlib.asynccontextmanager
async def http_session(stack, token: str | None = TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as client,
        streamable_http_client(stack["mcp_url"], http_client=client) as streams,
    ):
        yield streams


async def call(session: ClientSession, tool: str, **arguments):
    result = await session.call_tool(tool, arguments)
    text = "".join(getattr(block, "text", "") for block in result.content)
    if result.is_error:
        return None, text
    return (result.structured_content or json.loads(text)), text


async def exercise(session: ClientSession, repo, task_id: str) -> None:
    await session.initialize()
    listed = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(listed) == TOOLS
    trigger = listed["trigger_preview_deploy"]
    assert set(trigger.input_schema["properties"]) == {"task_id", "repository", "branch", "pr_number"}
    assert "task_id" in (trigger.description or "")
    assert listed["get_preview"].input_schema["required"] == ["preview_id"]

    # A bad task id is a tool error with a message, not a crash.
    found, message = await call(session, "trigger_preview_deploy", task_id="no such task", repository=repo.full_name)
    assert found is None
    assert "not a valid git branch name" in message
    found, message = await call(session, "trigger_preview_deploy", task_id="T404", repository=repo.full_name)
    assert found is None
    assert "not found" in message

    started, _ = await call(session, "trigger_preview_deploy", task_id=task_id, repository=repo.full_name)
    assert started["queued"] is True
    assert started["branch"] == f"task/{task_id}"
    preview_id = started["id"]
    deadline = time.monotonic() + 180
    while True:
        current, _ = await call(session, "get_preview", preview_id=preview_id)
        if current["state"] in ("ready", "failed") or time.monotonic() > deadline:
            break
        await anyio.sleep(1)
    assert current["state"] == "ready", current
    assert current["progress"] == 100
    assert current["url"].startswith("https://")

    listed_previews, _ = await call(session, "list_previews", repository=repo.full_name)
    assert [p["id"] for p in listed_previews["result"]] == [preview_id]
    logs, _ = await call(session, "get_preview_logs", preview_id=preview_id, tail=20)
    assert set(logs) >= {"id", "app", "build"}
    credentials, _ = await call(session, "get_preview_credentials", preview_id=preview_id)
    assert credentials["username"] == "preview"
    assert len(credentials["password"]) >= 20

    deleted, _ = await call(session, "delete_preview", preview_id=preview_id)
    assert deleted["state"] == "deleting"
    deadline = time.monotonic() + 120
    while (await call(session, "get_preview", preview_id=preview_id))[0]["state"] != "deleted":
        assert time.monotonic() < deadline, "the preview was not deleted"
        await anyio.sleep(1)


def test_over_stdio(stack, task):
    repo, task_id = task

    async def scenario():
        async with stdio_session(stack) as (read, write), ClientSession(read, write) as session:
            await exercise(session, repo, task_id)

    anyio.run(scenario)


def test_over_streamable_http(stack, task):
    repo, task_id = task

    async def scenario():
        async with http_session(stack) as (read, write), ClientSession(read, write) as session:
            await exercise(session, repo, task_id)

    anyio.run(scenario)


@pytest.mark.parametrize("token", [None, "wrong-token-" + "x" * 16])
def test_http_refuses_a_missing_or_wrong_token(stack, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    answer = httpx2.post(stack["mcp_url"], json=body, headers={**headers, "Accept": "application/json"}, timeout=30)
    assert answer.status_code == 401


def test_a_read_token_may_look_but_not_deploy(stack, task):
    repo, task_id = task
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "app",
            "tokens",
            "create",
            "--name",
            "agent",
            "--scope",
            "read",
            "--all",
        ],
        env={**stack["env"], "PATH": f"{sys.prefix}/bin:/usr/bin:/bin"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    read_token = created.stdout.split(": ", 1)[1].splitlines()[0].strip()

    async def scenario():
        async with http_session(stack, read_token) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            found, message = await call(session, "trigger_preview_deploy", task_id=task_id, repository=repo.full_name)
            assert found is None
            assert "this needs deploy" in message
            listed, _ = await call(session, "list_previews")
            assert "result" in listed

    anyio.run(scenario)
