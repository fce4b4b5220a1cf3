"""The JSON API and /metrics. Triggers ask the real Gitea for the head commit."""

from datetime import datetime, timedelta

import pytest

from app.db import database, utcnow
from app.domain import costs
from app.domain.states import PreviewState
from app.models import Deployment, Event, Preview, Repository
from app.usecases.deploy import budgets, usage
from tests.testbed.helpers import AUTH, TOKEN


@pytest.fixture
def settings(settings):
    return settings.replace(api_tokens=(TOKEN, "another-token-" + "y" * 10))


def _repository(name="acme/shop"):
    return Repository.create(full_name=name, clone_url=f"http://git/{name}.git")


def _preview(repository, number, state=PreviewState.READY, age=timedelta(), **fields):
    created = utcnow() - age
    return Preview.create(
        repository=repository,
        target_key=f"{repository.full_name}#{number}",
        pr_number=number,
        branch=f"feature/{number}",
        head_sha="a" * 40,
        state=state,
        created_at=created,
        updated_at=created,
        **fields,
    )


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-zzzzzzzzzz", f"Token {TOKEN}", "Bearer "])
def test_without_a_valid_token_the_api_refuses_and_changes_nothing(client, db, header):
    repository = _repository()
    preview = _preview(repository, 1)
    headers = {"Authorization": header} if header else {}
    for method, path in [
        ("GET", "/api/previews"),
        ("GET", f"/api/previews/{preview.id}"),
        ("DELETE", f"/api/previews/{preview.id}"),
        ("POST", "/api/previews"),
        ("GET", "/api/previews/stats"),
        ("DELETE", "/api/tasks/x/preview"),
    ]:
        response = client.open(path, method=method, headers=headers, json={"repository": "acme/shop", "branch": "x"})
        assert response.status_code == 401, (method, path)
    assert Preview.get_by_id(preview.id).state == PreviewState.READY


def test_the_api_is_closed_when_no_tokens_are_configured(settings, db):
    from app import create_app

    app = create_app(settings.replace(api_tokens=()))
    assert app.test_client().get("/api/previews", headers=AUTH).status_code == 401


def test_health_stays_open_and_metrics_are_closed_unless_opened(settings, client, db):
    from app import create_app

    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200  # the test settings open them
    closed = create_app(settings.replace(metrics_open=False)).test_client()
    assert closed.get("/healthz").status_code == 200
    answer = closed.get("/metrics")
    assert answer.status_code == 401
    assert b"METRICS_TOKEN" in answer.data


def test_list_filters_and_paginates_hundreds_of_previews(client, db):
    shop, blog = _repository(), _repository("acme/blog")
    with database.atomic():
        for number in range(1, 301):
            _preview(
                shop if number % 3 else blog, number, state=PreviewState.READY if number % 2 else PreviewState.FAILED
            )
    page = client.get("/api/previews?per_page=50&page=2", headers=AUTH).json
    assert page["total"] == 300
    assert len(page["items"]) == 50
    assert page["page"] == 2
    assert [item["pr_number"] for item in page["items"]] == list(range(250, 200, -1))
    failed_blog = client.get("/api/previews?state=failed&repository=acme/blog&per_page=200", headers=AUTH).json
    assert failed_blog["total"] == 50
    assert {(i["state"], i["repository"]) for i in failed_blog["items"]} == {("failed", "acme/blog")}


@pytest.mark.parametrize("query", ["state=bogus", "page=0", "per_page=1000", "per_page=x"])
def test_bad_list_parameters_are_400(client, db, query):
    response = client.get(f"/api/previews?{query}", headers=AUTH)
    assert response.status_code == 400
    assert response.json["error"]


def test_show_includes_deployments_and_events(client, db):
    preview = _preview(_repository(), 7, url="https://x.preview.localhost")
    Deployment.create(
        preview=preview, head_sha="a" * 40, status="ready", digest="sha256:" + "b" * 64, timings={"build": 1.5}
    )
    Event.record(preview, "build", "building", progress=20, duration_ms=1500)
    data = client.get(f"/api/previews/{preview.id}", headers=AUTH).json
    assert data["url"] == "https://x.preview.localhost"
    assert data["pr_number"] == 7
    assert data["deployments"][0]["timings"] == {"build": 1.5}
    assert data["events"][0] == {
        "phase": "build",
        "message": "building",
        "progress": 20,
        "duration_ms": 1500,
        "at": data["events"][0]["at"],
    }


def test_show_says_what_the_preview_spent_and_its_repositorys_month(client, db, settings):
    repository = _repository()
    budgets.set_budget(repository.full_name, 3.0)
    preview = _preview(repository, 7, holds_slot=True)
    usage.start(preview, utcnow() - timedelta(hours=2))
    cost = client.get(f"/api/previews/{preview.id}", headers=AUTH).json["cost"]
    per_hour = usage.prices_of(settings).per_hour(costs.APP_CORES, costs.APP_GIB)
    assert cost["currency"] == "USD"
    assert cost["so_far"] == pytest.approx(2 * per_hour, abs=1e-3)
    assert cost["per_day"] == pytest.approx(24 * per_hour, abs=1e-3)
    assert cost["repository_budget"] == 3.0
    assert cost["repository_this_month"] <= cost["so_far"] + 1e-9


def test_show_says_whether_gitea_has_been_told(client, db):
    """An agent or operator sees a status Gitea has not taken yet, and when it is tried again."""
    preview = _preview(_repository(), 8)
    assert client.get(f"/api/previews/{preview.id}", headers=AUTH).json["gitea_report"] == {
        "up_to_date": True,
        "failed_tries": 0,
        "next_try_at": None,
    }
    Preview.change(preview.id, state=PreviewState.FAILED, report_detail="the build failed")
    Preview.update(report_attempts=3, report_next_at=datetime(2026, 12, 3, 12, 0, 5)).execute()
    assert client.get(f"/api/previews/{preview.id}", headers=AUTH).json["gitea_report"] == {
        "up_to_date": False,
        "failed_tries": 3,
        "next_try_at": "2026-12-03T12:00:05Z",
    }


def test_unknown_ids_are_404_and_say_which(client, db):
    assert client.get("/api/previews/999", headers=AUTH).json == {"error": "preview 999 not found"}
    assert client.delete("/api/previews/999", headers=AUTH).status_code == 404
    _repository()
    response = client.delete("/api/tasks/42/preview", headers=AUTH)
    assert response.status_code == 404
    assert "task '42' has no preview" in response.json["error"]


def test_stats_count_by_state_and_age_and_price_requested_resources(client, db, settings):
    repository = _repository()
    _preview(repository, 1, age=timedelta(minutes=30))
    _preview(repository, 2, age=timedelta(hours=5))
    _preview(repository, 3, age=timedelta(days=3), state=PreviewState.FAILED)
    _preview(repository, 4, age=timedelta(days=9))
    _preview(repository, 5, state=PreviewState.DELETED, age=timedelta(days=20))
    # Priced from what holds a slot now, since it took it (as the PR comment prices it): two
    # previews, for 2 hours and 10 hours; the deleted one's slot is long given back.
    now = utcnow()
    for number, hours in ((1, 2), (2, 10)):
        held = Preview.get(Preview.pr_number == number)
        Preview.update(holds_slot=True).where(Preview.id == held.id).execute()
        usage.start(held, now - timedelta(hours=hours))
    data = client.get("/api/previews/stats", headers=AUTH).json
    assert data["total"] == 5
    assert data["active"] == 4
    assert data["by_state"]["ready"] == 3
    assert data["by_state"]["deleted"] == 1
    assert data["by_age"] == {"<1h": 1, "1-24h": 1, "1-7d": 1, ">7d": 1}
    per_preview = 0.1 * settings.price_cpu_core_hour + 0.125 * settings.price_memory_gb_hour
    assert data["cost"]["per_hour"] == round(2 * per_preview, 4)
    assert data["cost"]["so_far"] == pytest.approx(12 * per_preview, abs=0.01)
    assert data["alert"] == {"threshold": 50, "over": False}


def test_stats_alert_when_active_previews_pass_the_threshold(settings, db):
    from app import create_app

    app = create_app(settings.replace(active_alert_threshold=2))
    repository = _repository()
    for number in range(3):
        _preview(repository, number)
    assert app.test_client().get("/api/previews/stats", headers=AUTH).json["alert"] == {"threshold": 2, "over": True}


def test_metrics_report_previews_deliveries_and_queue(client, db):
    repository = _repository()
    _preview(repository, 1)
    _preview(repository, 2, state=PreviewState.FAILED)
    Deployment.create(preview=Preview.get(), head_sha="a" * 40, timings={"build": 2.0, "rollout": 1.0})
    Deployment.create(preview=Preview.get(), head_sha="b" * 40, timings={"build": 0.5})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'previews{state="ready"} 1.0' in text
    assert 'previews{state="failed"} 1.0' in text
    assert 'preview_webhook_deliveries_total{outcome="accepted"} 0.0' in text
    assert 'preview_phase_duration_seconds_sum{phase="build"} 2.5' in text
    assert 'preview_phase_duration_seconds_count{phase="build"} 2.0' in text
    assert 'preview_phase_duration_seconds_count{phase="rollout"} 1.0' in text
    assert "preview_queue_depth 0.0" in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("nope", "the body is not valid JSON"),
        ("[1, 2]", "the body must be a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "the body is not valid JSON"),  # nested past the parser's recursion limit
        ({"repository": "shop", "branch": "x"}, "repository must be owner/name"),
        ({"repository": "a/b"}, "give exactly one of branch or pr_number"),
        ({"repository": "a/b", "branch": "x", "pr_number": 1}, "give exactly one of branch or pr_number"),
        ({"repository": "a/b", "pr_number": "1"}, "pr_number must be a positive whole number"),
        ({"repository": "a/b", "branch": " "}, "branch must be a non-empty string"),
    ],
)
def test_bad_trigger_requests_are_400_and_change_nothing(client, db, body, message):
    response = (
        client.post("/api/previews", headers=AUTH, data=body, content_type="application/json")
        if isinstance(body, str)
        else client.post("/api/previews", headers=AUTH, json=body)
    )
    assert response.status_code == 400
    assert response.json == {"error": message}
    assert Preview.select().count() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[1]", "the body must be a JSON object"),
        ('{"repository": 5}', "repository must be owner/name"),
        ("{" * 10, "the body is not valid JSON"),
    ],
)
def test_bad_task_trigger_bodies_are_400_and_change_nothing(client, db, body, message):
    response = client.post("/api/tasks/t1/preview", headers=AUTH, data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json == {"error": message}
    assert Preview.select().count() == 0


def test_the_public_preview_page_says_why_it_failed_and_shows_no_secret(client, db):
    preview = _preview(_repository(), 3, state=PreviewState.FAILED, namespace="preview-shop-pr-3-x")
    Deployment.create(
        preview=preview,
        head_sha="a" * 40,
        status="failed",
        failure_reason="rollout: pod preview-shop-pr-3-x/app-5d9 OOMKilled on node kwok-node-1",
        build_log_tail="GIT_PASSWORD=should-never-show",
    )
    Event.record(preview, "rollout", "failed: pod preview-shop-pr-3-x/app-5d9 OOMKilled on node kwok-node-1")
    page = client.get(f"/previews/{preview.public_id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "The app did not become available" in text
    assert "failed" in text
    assert "kwok-node-1" not in text
    assert "preview-shop-pr-3-x" not in text
    assert "should-never-show" not in text
    # Row ids, sequential and guessable, lead nowhere.
    assert client.get(f"/previews/{preview.id}").status_code == 404
    assert client.get("/previews/999").status_code == 404


def test_a_private_repositorys_preview_page_shows_only_the_state(client, db):
    repository = Repository.create(full_name="acme/secret-plans", clone_url="http://git/x.git", private=True)
    preview = _preview(repository, 4)
    Event.record(preview, "queued", "pull request opened at aaaaaaaaaaaa")
    text = client.get(f"/previews/{preview.public_id}").get_data(as_text=True)
    assert "ready" in text
    assert "secret-plans" not in text
    assert "feature/4" not in text
    assert "acme" not in text


def test_credentials_of_a_deleted_preview_are_404(client, db):
    preview = _preview(_repository(), 4, state=PreviewState.DELETED)
    response = client.get(f"/api/previews/{preview.id}/credentials", headers=AUTH)
    assert response.status_code == 404
    assert response.json == {"error": f"preview {preview.id} has no credentials (state deleted)"}


def test_metrics_can_require_a_token(settings, db):
    from app import create_app

    guarded = create_app(settings.replace(metrics_token="metrics-token-0123456789")).test_client()
    assert guarded.get("/metrics").status_code == 401
    assert guarded.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    scraped = guarded.get("/metrics", headers={"Authorization": "Bearer metrics-token-0123456789"})
    assert scraped.status_code == 200
    assert b"previews" in scraped.data


@pytest.mark.parametrize("branch", ["../../admin/users", "task/../../x", "a b", "task/x\n", ".git"])
def test_a_branch_that_git_would_refuse_is_400_and_changes_nothing(client, db, branch):
    response = client.post("/api/previews", headers=AUTH, json={"repository": "acme/shop", "branch": branch})
    assert response.status_code == 400
    assert "not a valid git branch name" in response.json["error"]
    assert Preview.select().count() == 0


def test_a_delivery_says_what_the_worker_made_of_it(client, db):
    from app.usecases.access import tokens
    from tests.testbed.helpers import planned, post_webhook

    received = post_webhook(client, "pull_request_opened", "pull_request", delivery="gitea-uuid-7").json
    path = f"/api/deliveries/{received['delivery_id']}"
    before = client.get(path, headers=AUTH).json
    assert (before["outcome"], before["preview_id"], before["processed_at"]) == ("received", None, None)
    assert before["target"] == "acme/shop#12"

    planned(client, received)
    after = client.get(path, headers=AUTH).json
    assert after["outcome"] == "accepted"
    assert after["preview_id"] == Preview.get().id
    assert client.get("/api/deliveries/gitea-uuid-7", headers=AUTH).json == after  # Gitea's id works too
    shown = client.get(f"/api/previews/{after['preview_id']}", headers=AUTH).json
    assert [d["delivery_id"] for d in shown["deliveries"]] == [received["delivery_id"]]

    _repository("acme/blog")
    _, other = tokens.create("blog", "read", "acme/blog")
    hidden = client.get(path, headers={"Authorization": f"Bearer {other}"})
    assert (hidden.status_code, hidden.json) == (404, {"error": f"delivery {str(received['delivery_id'])!r} not found"})
    assert client.get("/api/deliveries/nope", headers=AUTH).status_code == 404
    assert client.get(path).status_code == 401
