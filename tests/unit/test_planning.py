import pytest

from app.domain.gitea_events import parse_event
from app.domain.planning import APPROVE, DEPLOY, LABELS, TEARDOWN, plan
from app.settings import Settings
from tests.testbed.factories import payload, with_changes

SETTINGS = Settings()


def planned(event_type, name, open_pr=None, **changes):
    return plan(parse_event(event_type, with_changes(payload(name), **changes)), SETTINGS, open_pr)


@pytest.mark.parametrize(
    ("event_type", "name"),
    [
        ("pull_request", "pull_request_opened"),
        ("pull_request", "pull_request_reopened"),
        ("pull_request_sync", "pull_request_synchronized"),
    ],
)
def test_pr_opened_reopened_synchronized_want_a_preview_at_the_head_sha(event_type, name):
    result = plan(parse_event(event_type, payload(name)), SETTINGS)
    assert result.intent == DEPLOY
    assert result.target_key == "acme/shop#12"
    assert result.head_sha == payload(name)["pull_request"]["head"]["sha"]


@pytest.mark.parametrize("name", ["pull_request_closed", "pull_request_closed_merged"])
def test_pr_closed_or_merged_wants_teardown(name):
    result = planned("pull_request", name)
    assert (result.intent, result.target_key) == (TEARDOWN, "acme/shop#12")
    assert result.reason == ("pull request merged" if "merged" in name else "pull request closed")


def test_pr_keyed_by_number_not_branch():
    # After "delete branch on merge", head.ref may read refs/pull/<N>/head.
    result = planned("pull_request", "pull_request_closed_merged", **{"pull_request.head.ref": "refs/pull/12/head"})
    assert result.target_key == "acme/shop#12"


def test_other_pr_actions_are_ignored():
    result = planned("pull_request", "pull_request_opened", action="edited")
    assert result.intent is None
    assert "edited" in result.reason


def test_a_label_change_asks_the_worker_to_read_the_labels():
    assert planned("pull_request_label", "pull_request_label_updated").intent == LABELS


def test_push_to_task_branch_wants_a_branch_preview():
    result = planned("push", "push_task_branch")
    assert (result.intent, result.target_key, result.branch) == (DEPLOY, "acme/shop@task/login-form", "task/login-form")
    assert result.head_sha == payload("push_task_branch")["after"]


def test_push_deleting_a_task_branch_wants_teardown():
    result = planned("push", "push_task_branch_deleted")
    assert (result.intent, result.target_key) == (TEARDOWN, "acme/shop@task/login-form")


def test_push_to_a_branch_with_an_open_pr_is_left_to_the_sync_event():
    result = planned("push", "push_task_branch", open_pr=12)
    assert result.intent is None
    assert "#12" in result.reason


@pytest.mark.parametrize(
    ("name", "why"), [("push_main", "matches no task-branch pattern"), ("push_tag", "not a branch")]
)
def test_other_pushes_are_ignored(name, why):
    result = planned("push", name)
    assert result.intent is None
    assert why in result.reason


def test_task_branch_pattern_is_configurable():
    event = parse_event("push", with_changes(payload("push_task_branch"), ref="refs/heads/agent/x"))
    assert plan(event, SETTINGS).intent is None
    assert plan(event, Settings(task_branch_patterns=("agent/*",))).intent == DEPLOY


def test_a_deploy_is_asked_for_by_its_sender_and_a_teardown_by_nobody_in_particular():
    # The dashboard's "mine": previews of the PRs and pushes the signed-in user sent.
    assert planned("pull_request", "pull_request_opened", sender={"login": "bob"}).actor == "bob"
    assert planned("push", "push_task_branch", sender={"login": "carol"}).actor == "carol"
    assert planned("pull_request", "pull_request_closed", sender={"login": "bob"}).actor is None
    assert planned("push", "push_task_branch_deleted", sender={"login": "carol"}).actor is None


def test_work_key_is_the_same_for_the_same_work_only():
    opened = planned("pull_request", "pull_request_opened")
    assert opened.work_key == planned("pull_request", "pull_request_opened", sender={"login": "bob"}).work_key
    assert opened.work_key != planned("pull_request", "pull_request_reopened").work_key
    assert (
        opened.work_key
        != planned("pull_request", "pull_request_opened", **{"pull_request.head.sha": "c" * 40}).work_key
    )
    assert opened.work_key != planned("pull_request", "pull_request_opened", number=13).work_key
    assert planned("push", "push_main").work_key is None


def test_gitea_delete_event_of_a_task_branch_wants_teardown():
    result = plan(parse_event("delete", payload("delete_task_branch")), SETTINGS)
    assert (result.intent, result.target_key, result.action) == (TEARDOWN, "acme/shop@task/login-form", "delete")


def test_gitea_delete_event_of_a_tag_or_other_branch_is_ignored():
    tag = with_changes(payload("delete_task_branch"), ref_type="tag", ref="v1")
    assert plan(parse_event("delete", tag), SETTINGS).intent is None
    other = with_changes(payload("delete_task_branch"), ref="feature/x")
    assert plan(parse_event("delete", other), SETTINGS).intent is None


def test_the_approval_label_asks_to_approve_the_prs_head_for_its_sender():
    labelled = with_changes(
        payload("pull_request_label_updated"), **{"pull_request.labels": [{"name": "preview:approved"}]}
    )
    wanted = plan(parse_event("pull_request_label", labelled), SETTINGS)
    assert (wanted.intent, wanted.actor, wanted.pr_number) == (APPROVE, "alice", labelled["number"])
    assert wanted.head_sha == labelled["pull_request"]["head"]["sha"]
    # Any other label change is no approval.
    assert plan(parse_event("pull_request_label", payload("pull_request_label_updated")), SETTINGS).intent == LABELS


@pytest.mark.parametrize(
    ("body", "action", "approves"),
    [
        ("/preview", "created", True),
        ("  /preview\nplease", "created", True),
        ("/preview", "edited", False),
        ("lgtm /preview", "created", False),
        ("/previews", "created", False),
    ],
)
def test_a_preview_comment_asks_to_approve_for_its_author(body, action, approves):
    comment = with_changes(payload("issue_comment"), action=action, **{"comment.body": body})
    wanted = plan(parse_event("pull_request_comment", comment), SETTINGS)
    assert (wanted.intent == APPROVE) is approves
    if approves:
        assert wanted.actor == "reviewer"
        assert wanted.target_key.endswith("#12")
