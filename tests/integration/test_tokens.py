"""Scoped API tokens: each route with read, deploy, admin and another repository's tokens."""

import pytest

from app.db import database
from app.domain.states import PreviewState
from app.models import ApiToken, Preview, Repository
from app.usecases.access import tokens
from tests.testbed.helpers import AUTH, TOKEN


@pytest.fixture
def world(db):
    shop = Repository.create(full_name="acme/shop", clone_url="http://git/acme/shop.git")
    Repository.create(full_name="acme/blog", clone_url="http://git/acme/blog.git")
    preview = Preview.create(
        repository=shop,
        target_key="acme/shop#1",
        pr_number=1,
        branch="feature/1",
        head_sha="a" * 40,
        state=PreviewState.READY,
        namespace="preview-shop-pr-1-x",
    )
    made = {scope: tokens.create(scope, scope, "acme/shop")[1] for scope in tokens.SCOPES}
    made["other"] = tokens.create("other", "admin", "acme/blog")[1]
    made["all-read"] = tokens.create("all", "read", None)[1]
    return preview, {name: {"Authorization": f"Bearer {token}"} for name, token in made.items()}


def snapshot(preview):
    with database.connection_context():
        row = Preview.get_by_id(preview.id)
        return row.state, row.head_sha, Preview.select().count()


# route -> expected status per token; None: the token gets past its checks (what follows is not about tokens)
ROUTES = [
    ("GET", "/api/previews", {"read": 200, "deploy": 200, "admin": 200, "other": 200}),
    ("GET", "/api/previews/{id}", {"read": 200, "deploy": 200, "admin": 200, "other": 404}),
    ("GET", "/api/previews/stats", {"read": 403, "deploy": 403, "admin": 403, "other": 403, "all-read": 200}),
    ("GET", "/api/previews/{id}/logs", {"read": 403, "deploy": None, "admin": None, "other": 404}),
    ("GET", "/api/previews/{id}/credentials", {"read": 403, "deploy": 403, "admin": None, "other": 404}),
    ("POST", "/api/previews", {"read": 403, "deploy": None, "admin": None, "other": 403, "all-read": 403}),
    ("DELETE", "/api/previews/{id}", {"read": 403, "other": 404, "all-read": 403, "deploy": 202}),
]


@pytest.mark.parametrize(("method", "path", "expected"), ROUTES)
def test_each_route_checks_the_tokens_scope_and_repository(client, world, method, path, expected):
    preview, headers = world
    for name, status in expected.items():
        before = snapshot(preview)
        response = client.open(
            path.format(id=preview.id),
            method=method,
            headers=headers[name],
            json={"repository": "acme/shop", "branch": "task/x"},
        )
        if status is None:
            assert response.status_code not in (401, 403, 404), (name, response.json)
            continue
        assert response.status_code == status, (name, response.json)
        if status >= 400:
            assert snapshot(preview) == before, name  # a refusal changes nothing


def test_another_repositorys_token_lists_nothing_of_this_one(client, world):
    _, headers = world
    assert client.get("/api/previews", headers=headers["other"]).json["total"] == 0
    assert client.get("/api/previews?repository=acme/shop", headers=headers["other"]).json["items"] == []
    assert client.get("/api/previews", headers=headers["read"]).json["total"] == 1


def test_tokens_are_stored_hashed_revocable_and_note_their_last_use(app, client, world):
    _, headers = world
    web = app.extensions["previews"].services
    web.settings = web.settings.replace(api_tokens=(TOKEN,))
    token = headers["read"]["Authorization"].removeprefix("Bearer ")
    with database.connection_context():
        row = ApiToken.get(ApiToken.name == "read")
        assert token not in {row.token_hash, row.name}
        assert row.last_used_at is None
    assert client.get("/api/previews", headers=headers["read"]).status_code == 200
    with database.connection_context():
        assert ApiToken.get_by_id(row.id).last_used_at is not None
        assert tokens.revoke(row.id)
    assert client.get("/api/previews", headers=headers["read"]).status_code == 401
    assert client.get("/api/previews", headers=AUTH).status_code == 200  # API_TOKENS: admin, as before


def test_the_cli_shows_a_token_once(app, db):
    Repository.create(full_name="acme/shop", clone_url="http://git/acme/shop.git")
    runner = app.test_cli_runner()
    created = runner.invoke(
        args=["tokens", "create", "--name", "agent", "--scope", "deploy", "--repository", "acme/shop"]
    )
    assert created.exit_code == 0, created.output
    token = created.output.split(": ", 1)[1].split()[0]
    assert token.startswith("pvt_")
    listed = runner.invoke(args=["tokens", "list"])
    assert "agent\tdeploy\tacme/shop\tactive" in listed.output
    assert token not in listed.output
    assert runner.invoke(args=["tokens", "create", "--name", "x", "--scope", "read"]).exit_code != 0
    assert runner.invoke(args=["tokens", "revoke", "1"]).exit_code == 0
    assert "revoked" in runner.invoke(args=["tokens", "list"]).output
