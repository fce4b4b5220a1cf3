"""Budgets on the real node: a repository over its monthly budget gets no new preview (the PR's
status says why); raised with `flask repos budget`, the scheduler lets the preview go and it is
built and served like any other."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.testbed.gitea_repo import create_repository
from tests.testbed.gitea_server import BOT
from tests.testbed.kube.waiting import eventually
from tests.testbed.node.checks import page, success_status
from tests.testbed.node.service import hooked_service_env, prepare_builds, sample_app
from tests.testbed.servers import free_port
from tests.testbed.service_processes import SecretEnv, flask_command, service_processes

pytestmark = [pytest.mark.node, pytest.mark.gitea, pytest.mark.slow]

SECRET = "node-budget-secret-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def budget_stack(gitea, real_node, redis_server, postgres_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("node-budgets")
    port = free_port()
    prepare_builds(real_node, BOT, gitea.bot_token)
    database = postgres_server.create_database(f"budgets_{uuid.uuid4().hex[:8]}")
    env = {
        **hooked_service_env(real_node, gitea, redis_server.url, database, port, SECRET, "budgets"),
        # Nothing to spend by default: every repository's first preview waits.
        "PREVIEW_BUDGET_PER_REPOSITORY": "0",
        "SCHEDULER_INTERVAL": "2s",
    }
    with service_processes(env, folder, port):
        yield {"url": f"http://127.0.0.1:{port}", "env": SecretEnv(env)}


def set_budget(stack, full_name: str, amount: str) -> str:
    """`flask repos budget`, as the operator runs it against the service's database."""
    done = flask_command(stack["env"], "repos", "budget", full_name, amount)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_over_its_budget_a_pr_waits_and_raised_it_is_built_and_served(real_node, budget_stack, gitea, tmp_path):
    repo = create_repository(
        gitea,
        f"node-budget-{uuid.uuid4().hex[:6]}",
        tmp_path / "work",
        webhook_url=f"{budget_stack['url']}/webhooks/gitea",
        secret=SECRET,
        files=sample_app(real_node.image("base"), "first version"),
    )
    sha = repo.commit("feature/costly", sample_app(real_node.image("base"), "worth it"), "A page")
    repo.open_pr("feature/costly")

    def held():
        status = repo.latest_status(sha)
        return status if status and "waiting for budget" in status["description"] else None

    status = eventually(held, timeout=60, what="a pending status that says the budget holds it")
    assert status["status"] == "pending"
    assert "0.00 USD budget this month" in status["description"]
    # Held means held: no namespace, nothing built, after three scheduler passes.
    time.sleep(6)
    namespaces = real_node.plane.kubectl("get", "namespaces", "-o", "name").stdout
    assert repo.full_name.split("/")[1] not in namespaces
    assert repo.latest_status(sha)["status"] == "pending"

    assert "budget 5.00 USD a month" in set_budget(budget_stack, repo.full_name, "5")
    host = success_status(repo, sha, real_node)["target_url"].split("://", 1)[1].split("/", 1)[0]
    # Served: Traefik asks for the preview's password (the app is behind it, up).
    eventually(lambda: page(real_node, host).status_code == 401, timeout=30, what="the preview's route")
