"""API triggers ask the real Gitea for the head commit and deploy on the test control plane."""

import uuid

import pytest

from app.adapters.gitea import Gitea
from app.db import database
from app.models import Preview
from tests.testbed.gitea_repo import create_repository
from tests.testbed.helpers import AUTH, TOKEN


@pytest.fixture
def settings(settings):
    return settings.replace(api_tokens=(TOKEN, "another-token-" + "y" * 10))


@pytest.mark.kube
@pytest.mark.gitea
class TestTriggersWithGitea:
    @pytest.fixture
    def api(self, app, services, gitea, tmp_path):
        services.gitea = Gitea(gitea.url, gitea.bot_token)
        app.extensions["previews"].services = services
        repo = create_repository(gitea, f"api-{uuid.uuid4().hex[:6]}", tmp_path / "work")
        return app.test_client(), repo, services

    def test_trigger_by_branch_and_by_task_then_delete(self, api):
        client, repo, services = api
        sha = repo.commit("task/42", {"x.txt": "x"}, "Task 42")
        created = client.post("/api/previews", headers=AUTH, json={"repository": repo.full_name, "branch": "task/42"})
        assert created.status_code == 202
        assert created.json["state"] == "queued"
        assert created.json["head_sha"] == sha
        assert created.json["queued"]
        again = client.post(f"/api/tasks/42/preview?repository={repo.full_name}", headers=AUTH)
        assert again.status_code == 202
        assert again.json["id"] == created.json["id"]
        with database.connection_context():
            from app.usecases.deploy import pipeline

            assert pipeline.deploy(services, created.json["id"], sha) == "ready"
        logs = client.get(f"/api/tasks/42/preview-logs?repository={repo.full_name}&tail=5", headers=AUTH)
        assert logs.status_code == 200
        assert set(logs.json) == {"id", "tail", "app", "build"}
        deleted = client.delete(f"/api/tasks/42/preview?repository={repo.full_name}", headers=AUTH)
        assert deleted.status_code == 202
        assert deleted.json["state"] == "deleting"
        assert any(j.startswith(f"teardown-{created.json['id']}-") for j in services.queue.job_ids)

    def test_trigger_by_pr(self, api):
        client, repo, _ = api
        sha = repo.commit("feature/api", {"y.txt": "y"}, "API PR")
        number = repo.open_pr("feature/api")
        created = client.post("/api/previews", headers=AUTH, json={"repository": repo.full_name, "pr_number": number})
        assert created.status_code == 202
        assert created.json["head_sha"] == sha
        with database.connection_context():
            assert Preview.get_by_id(created.json["id"]).pr_number == number

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"repository": "nobody/nothing", "branch": "x"}, "repository 'nobody/nothing' not found"),
            ({"branch": "task/none"}, "branch 'task/none' not found in"),
            ({"pr_number": 999}, "pull request #999 not found in"),
        ],
    )
    def test_unknown_repository_branch_or_pr_is_404(self, api, body, message):
        client, repo, _ = api
        body = {"repository": repo.full_name, **body}
        response = client.post("/api/previews", headers=AUTH, json=body)
        assert response.status_code == 404
        assert message in response.json["error"]
        with database.connection_context():
            assert Preview.select().count() == 0
