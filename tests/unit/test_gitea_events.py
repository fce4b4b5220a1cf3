import pytest

from app.domain.gitea_events import PayloadError, PullRequestEvent, PushEvent, parse_event
from tests.testbed.factories import payload, with_changes


def test_push_to_a_task_branch():
    event = parse_event("push", payload("push_task_branch"))
    assert isinstance(event, PushEvent)
    assert event.repository.full_name == "acme/shop"
    assert event.repository.clone_url == "http://127.0.0.1:3000/acme/shop.git"
    assert event.branch == "task/login-form"
    assert event.creates_branch
    assert not event.deletes_branch


def test_push_that_deletes_a_branch():
    event = parse_event("push", payload("push_task_branch_deleted"))
    assert event.deletes_branch
    assert event.branch == "task/login-form"


def test_push_of_a_tag_has_no_branch():
    assert parse_event("push", payload("push_tag")).branch is None


def test_sha256_repositories_are_accepted():
    body = with_changes(payload("push_task_branch"), after="ab" * 32)
    assert parse_event("push", body).after == "ab" * 32
    deleted = with_changes(payload("push_task_branch_deleted"), before="ab" * 32, after="0" * 64)
    assert parse_event("push", deleted).deletes_branch


@pytest.mark.parametrize(
    ("name", "event_type", "action", "merged"),
    [
        ("pull_request_opened", "pull_request", "opened", False),
        ("pull_request_synchronized", "pull_request_sync", "synchronized", False),
        ("pull_request_closed_merged", "pull_request", "closed", True),
        ("pull_request_closed", "pull_request", "closed", False),
        ("pull_request_label_updated", "pull_request_label", "label_updated", False),
    ],
)
def test_pull_request_events(name, event_type, action, merged):
    event = parse_event(event_type, payload(name))
    assert isinstance(event, PullRequestEvent)
    assert (event.action, event.merged, event.number) == (action, merged, 12)
    assert event.head_ref == "feature/login"
    assert len(event.head_sha) == 40
    assert not event.from_fork


def test_fork_pull_request_is_recognised():
    body = with_changes(payload("pull_request_opened"), **{"pull_request.head.repo.full_name": "mallory/shop"})
    assert parse_event("pull_request", body).from_fork


def test_other_event_types_are_not_parsed():
    assert parse_event("release", payload("issue_comment")) is None


def test_a_comment_on_an_issue_is_not_a_pull_request_comment():
    on_issue = with_changes(payload("issue_comment"), is_pull=False)
    assert parse_event("issue_comment", on_issue) is None
    comment = parse_event("pull_request_comment", payload("issue_comment"))
    assert (comment.number, comment.author, comment.body) == (12, "reviewer", "lgtm")


@pytest.mark.parametrize(
    ("event_type", "name", "changes", "message"),
    [
        ("push", "push_task_branch", {"after": None}, "missing field after"),
        ("push", "push_task_branch", {"after": "abc"}, "field after is not a full commit sha"),
        ("push", "push_task_branch", {"repository": None}, "missing field repository.full_name"),
        ("push", "push_task_branch", {"repository.full_name": "shop"}, "field repository.full_name is not owner/name"),
        ("pull_request", "pull_request_opened", {"pull_request.head.sha": None}, "missing field pull_request.head.sha"),
        ("pull_request", "pull_request_opened", {"number": "12"}, "field number has the wrong type"),
        ("pull_request", "pull_request_opened", {"number": True}, "field number has the wrong type"),
        ("pull_request", "pull_request_opened", {"action": 3}, "field action has the wrong type"),
    ],
)
def test_missing_or_mistyped_fields_say_which(event_type, name, changes, message):
    with pytest.raises(PayloadError, match=f"^{message}$"):
        parse_event(event_type, with_changes(payload(name), **changes))


def test_non_object_body_is_rejected():
    with pytest.raises(PayloadError, match="not a JSON object"):
        parse_event("push", [1, 2])
