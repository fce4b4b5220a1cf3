"""What Gitea is told: status per state, and the password only where allowed."""

import pytest
import responses

from app.adapters.gitea import Gitea
from app.domain.states import PreviewState
from app.models import Preview, Repository, Screenshot
from app.settings import Settings
from app.usecases.deploy import reporting, usage

SETTINGS = Settings(public_url="https://previews.example.com")


def preview(state, private=False, url="https://shop-pr-1-abc.preview.example.com"):
    repository = Repository(full_name="acme/shop", clone_url="x", private=private)
    return Preview(
        id=7,
        repository=repository,
        target_key="acme/shop#1",
        pr_number=1,
        branch="f",
        head_sha="a" * 40,
        state=state,
        url=url,
    )


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (PreviewState.QUEUED, "pending"),
        (PreviewState.BUILDING, "pending"),
        (PreviewState.DEPLOYING, "pending"),
        (PreviewState.READY, "success"),
        (PreviewState.FAILED, "failure"),
    ],
)
def test_status_state_per_preview_state(state, expected):
    shown = preview(state)
    status, _, target = reporting.status_for(SETTINGS, shown)
    assert status == expected
    if state == PreviewState.READY:
        assert target == "https://shop-pr-1-abc.preview.example.com"
    else:  # the page, by its random public id
        assert target == f"https://previews.example.com/previews/{shown.public_id}"
        assert len(shown.public_id) == 32


def test_no_status_once_deleted():
    assert reporting.status_for(SETTINGS, preview(PreviewState.DELETED)) is None


def test_failure_detail_reaches_the_description():
    _, description, _ = reporting.status_for(SETTINGS, preview(PreviewState.FAILED), "the app keeps crashing")
    assert description == "Preview failed: the app keeps crashing"


def test_comment_carries_marker_url_and_no_password_by_default():
    body = reporting.comment_body(SETTINGS, preview(PreviewState.READY), None)
    assert body.startswith("<!-- preview:acme/shop#1 -->")
    assert "https://shop-pr-1-abc.preview.example.com" in body
    assert "`preview`" in body
    assert "/api/previews/7/credentials" in body


@responses.activate
@pytest.mark.parametrize(
    ("configured", "private", "shown"), [(True, True, True), (True, False, False), (False, True, False)]
)
def test_password_only_when_configured_and_the_repository_is_private(configured, private, shown):
    api = "http://gitea.test/api/v1"
    responses.post(f"{api}/repos/acme/shop/statuses/{'a' * 40}", status=201, json={})
    responses.get(f"{api}/user", json={"login": "bot"})
    responses.get(f"{api}/repos/acme/shop/issues/1/comments", json=[])
    created = responses.post(f"{api}/repos/acme/shop/issues/1/comments", status=201, json={"id": 1})
    settings = SETTINGS.replace(comment_password=configured)
    reporting.report(
        Gitea("http://gitea.test", "t"), settings, preview(PreviewState.READY, private=private), password="s3cret-pass"
    )
    assert ("s3cret-pass" in created.calls[0].request.body.decode()) is shown


def test_comment_shows_the_cost_so_far_and_per_day():
    cost = usage.Cost(so_far=0.01234, per_hour=0.004625)
    body = reporting.comment_body(SETTINGS, preview(PreviewState.READY), None, cost=cost)
    assert "| Cost | 0.0123 USD so far, 0.1110 USD a day while it runs |" in body
    deleted = reporting.comment_body(SETTINGS, preview(PreviewState.DELETED), None, cost=usage.Cost(2.5, 0))
    assert "It cost 2.50 USD in all." in deleted
    assert "Cost" not in reporting.comment_body(SETTINGS, preview(PreviewState.QUEUED), None, cost=usage.Cost(0, 0))


def test_comment_lists_the_screenshots_with_what_changed_and_says_compared_with_what():
    def shot(viewport, url, share=None, overlay=None):
        return Screenshot(
            page="/", viewport=viewport, attachment_url=url, overlay_url=overlay, changed_share=share,
            compared_sha="b" * 40 if share is not None else None,
            compared_with="the release/1.0 branch's preview" if share is not None else None,
        )  # fmt: skip

    rows = [
        shot("desktop", "https://git/attachments/d", 0.25, "https://git/attachments/o"),
        shot("phone", "https://git/attachments/p", 0.0),
    ]
    body = reporting.comment_body(SETTINGS, preview(PreviewState.READY), None, screenshots=rows)
    assert "| Page | Desktop | Phone |" in body
    assert (
        "| `/` | ![desktop](https://git/attachments/d)<br>25.0% changed ([highlighted](https://git/attachments/o))"
        " | ![phone](https://git/attachments/p)<br>no change |"
    ) in body
    assert f"Compared with the release/1\\.0 branch's preview at `{'b' * 12}`." in body
    # Nothing attached (a failed Job): no table.
    failed = [Screenshot(page="/", viewport="desktop", attachment_url=None)]
    assert "Screenshots" not in reporting.comment_body(SETTINGS, preview(PreviewState.READY), None, screenshots=failed)
