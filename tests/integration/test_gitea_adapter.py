"""Error paths of the Gitea adapter, with `responses` faking HTTP. The happy paths run against
the real Gitea in test_e2e.py and test_gitea_contract.py."""

import pytest
import requests
import responses

from app.adapters.gitea import Gitea, GiteaError

BASE = "http://gitea.test"
API = f"{BASE}/api/v1"


@pytest.fixture
def gitea():
    return Gitea(BASE, "secret-token", timeout=2)


@responses.activate
def test_connection_errors_become_gitea_errors_without_a_status(gitea):
    responses.post(f"{API}/repos/acme/shop/statuses/{'a' * 40}", body=requests.ConnectionError("refused"))
    with pytest.raises(GiteaError) as error:
        gitea.set_status("acme/shop", "a" * 40, "pending", None, "building")
    assert error.value.status is None
    assert "ConnectionError" in str(error.value)


@responses.activate
def test_timeouts_become_gitea_errors(gitea):
    responses.get(f"{API}/user", body=requests.Timeout("slow"))
    with pytest.raises(GiteaError):
        gitea.current_login()


@responses.activate
def test_error_answers_carry_status_and_message(gitea):
    responses.post(f"{API}/repos/acme/shop/statuses/{'a' * 40}", status=403, json={"message": "token lacks scope"})
    with pytest.raises(GiteaError) as error:
        gitea.set_status("acme/shop", "a" * 40, "success", "https://x", "ready")
    assert error.value.status == 403
    assert "token lacks scope" in str(error.value)


@responses.activate
def test_a_non_json_error_page_is_reported(gitea):
    responses.get(f"{API}/user", status=502, body="<html>bad gateway</html>")
    with pytest.raises(GiteaError) as error:
        gitea.current_login()
    assert error.value.status == 502
    assert "bad gateway" in str(error.value)


@responses.activate
def test_the_token_is_sent_as_gitea_expects(gitea):
    responses.get(f"{API}/user", json={"login": "bot"})
    assert gitea.current_login() == "bot"
    assert responses.calls[0].request.headers["Authorization"] == "token secret-token"


@responses.activate
def test_missing_branch_or_pr_is_none_not_an_error(gitea):
    responses.get(f"{API}/repos/acme/shop/branches/task/gone", status=404, json={"message": "not found"})
    responses.get(f"{API}/repos/acme/shop/pulls/99", status=404, json={"message": "not found"})
    assert gitea.branch_head("acme/shop", "task/gone") is None
    assert gitea.pull_request("acme/shop", 99) is None


@responses.activate
def test_a_comment_by_someone_else_with_our_marker_is_not_ours(gitea):
    marker = "<!-- preview:acme/shop#1 -->"
    responses.get(f"{API}/user", json={"login": "bot"})
    responses.get(
        f"{API}/repos/acme/shop/issues/1/comments",
        json=[{"id": 5, "body": f"{marker} copied", "user": {"login": "mallory"}}],
    )
    responses.post(f"{API}/repos/acme/shop/issues/1/comments", status=201, json={"id": 6})
    assert gitea.upsert_comment("acme/shop", 1, marker, f"{marker}\nhello") == 6


@responses.activate
def test_unchanged_comment_is_not_rewritten(gitea):
    marker = "<!-- preview:acme/shop#1 -->"
    body = f"{marker}\nsame"
    responses.get(f"{API}/user", json={"login": "bot"})
    responses.get(f"{API}/repos/acme/shop/issues/1/comments", json=[{"id": 5, "body": body, "user": {"login": "bot"}}])
    assert gitea.upsert_comment("acme/shop", 1, marker, body) == 5
    assert [c.request.method for c in responses.calls] == ["GET", "GET"]


def test_bad_arguments_are_refused_before_any_call(gitea):
    with pytest.raises(ValueError, match="done"):
        gitea.set_status("acme/shop", "a" * 40, "done", None, "x")
    with pytest.raises(ValueError, match="marker"):
        gitea.upsert_comment("acme/shop", 1, "<!-- m -->", "no marker here")


@responses.activate
def test_an_attachment_gitea_refused_or_answered_without_its_address_is_an_error(gitea):
    assets = f"{API}/repos/acme/shop/issues/comments/5/assets"
    responses.post(assets, status=413, json={"message": "file too large"})
    responses.post(assets, status=201, json={"id": 9})
    with pytest.raises(GiteaError) as refused:
        gitea.add_comment_attachment("acme/shop", 5, "desktop.png", b"\x89PNG")
    assert refused.value.status == 413
    with pytest.raises(GiteaError, match="browser_download_url"):
        gitea.add_comment_attachment("acme/shop", 5, "desktop.png", b"\x89PNG")
    # Removing one that is gone already is done, not an error.
    responses.delete(f"{assets}/9", status=404, json={"message": "not found"})
    gitea.delete_comment_attachment("acme/shop", 5, 9)
