"""Registering repositories through the API and the CLI, against the real test Gitea."""

import uuid

import pytest

from app.adapters.gitea import Gitea
from app.db import database
from app.models import Repository
from app.usecases.access import tokens
from tests.testbed.gitea_repo import create_repository
from tests.testbed.gitea_server import BOT
from tests.testbed.helpers import AUTH, TOKEN

pytestmark = pytest.mark.gitea


@pytest.fixture
def repo(app, gitea, tmp_path):
    web = app.extensions["previews"].services
    web.settings = web.settings.replace(
        api_tokens=(TOKEN,), gitea_url=gitea.url, gitea_token=gitea.bot_token, public_url="http://127.0.0.1:9"
    )
    web.gitea = Gitea(gitea.url, gitea.bot_token)
    created = create_repository(gitea, f"api-{uuid.uuid4().hex[:6]}", tmp_path / "work")
    gitea.api("PUT", f"/repos/{created.full_name}/collaborators/{BOT}", json={"permission": "admin"})
    return created


def secret_of(full_name):
    with database.connection_context():
        found = Repository.named(full_name)
        return found.webhook_secret if found else None


def test_an_admin_registers_a_repository_once_however_often_asked(client, gitea, repo):
    with database.connection_context():
        _, deploy_token = tokens.create("agent", "deploy", None)
    body = {"repository": repo.full_name}
    refused = client.post("/api/repositories", headers={"Authorization": f"Bearer {deploy_token}"}, json=body)
    assert refused.status_code == 403
    assert secret_of(repo.full_name) is None

    first = client.post("/api/repositories", headers=AUTH, json=body)
    assert first.status_code == 201
    assert first.json["created"] is True
    [hook] = gitea.api("GET", f"/repos/{repo.full_name}/hooks")
    assert hook["config"]["url"] == "http://127.0.0.1:9/webhooks/gitea"
    assert hook["id"] == first.json["hook_id"]
    assert {"push", "delete", "pull_request"} <= set(hook["events"])
    secret = secret_of(repo.full_name)
    assert secret
    assert len(secret) >= 32

    again = client.post("/api/repositories", headers=AUTH, json=body)  # the same hook, a new secret
    assert again.status_code == 201
    assert again.json["hook_id"] == first.json["hook_id"]
    assert len(gitea.api("GET", f"/repos/{repo.full_name}/hooks")) == 1
    assert secret_of(repo.full_name) != secret
    listed = client.get("/api/repositories", headers=AUTH).json["items"]
    assert {"repository": repo.full_name, "hook_id": first.json["hook_id"]} in listed

    unknown = client.post("/api/repositories", headers=AUTH, json={"repository": "nobody/nothing"})
    assert unknown.status_code == 404


def test_the_cli_rotates_and_removes(app, gitea, repo):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["repos", "add", repo.full_name]).exit_code == 0
    secret = secret_of(repo.full_name)
    rotated = runner.invoke(args=["repos", "rotate-secret", repo.full_name])
    assert rotated.exit_code == 0
    assert secret_of(repo.full_name) not in (None, secret)
    assert secret not in runner.invoke(args=["repos", "list"]).output
    assert runner.invoke(args=["repos", "remove", repo.full_name]).exit_code == 0
    assert gitea.api("GET", f"/repos/{repo.full_name}/hooks") == []
    assert secret_of(repo.full_name) is None
    assert runner.invoke(args=["repos", "rotate-secret", repo.full_name]).exit_code != 0
