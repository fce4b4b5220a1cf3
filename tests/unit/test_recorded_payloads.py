"""Deliveries recorded from a real Gitea 1.26 (tests/payloads/record.py): parsed and planned as expected."""

import json
from pathlib import Path

import pytest

from app.domain.gitea_events import parse_event
from app.domain.planning import DEPLOY, TEARDOWN, plan
from app.settings import Settings

RECORDED = Path(__file__).resolve().parents[1] / "payloads" / "gitea-1.26"

EXPECTED = {
    "push_main_first": (None, None),
    "push_task_branch": (DEPLOY, "ci-admin/shop@task/login-form"),
    "delete_task_branch": (TEARDOWN, "ci-admin/shop@task/login-form"),
    "push_feature_branch": (None, None),
    "push_feature_branch_update": (None, None),
    "pull_request_opened": (DEPLOY, "ci-admin/shop#1"),
    "pull_request_sync_synchronized": (DEPLOY, "ci-admin/shop#1"),
    "pull_request_closed": (TEARDOWN, "ci-admin/shop#1"),
    "pull_request_reopened": (DEPLOY, "ci-admin/shop#1"),
    "pull_request_closed_merged": (TEARDOWN, "ci-admin/shop#1"),
    "push_main_merge": (None, None),
}


def test_every_recorded_delivery_has_an_expectation():
    assert {path.stem for path in RECORDED.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_delivery_is_parsed_and_planned(name):
    recorded = json.loads((RECORDED / f"{name}.json").read_text())
    event = parse_event(recorded["headers"]["X-Gitea-Event-Type"], recorded["body"])
    assert event is not None
    assert event.repository.full_name == "ci-admin/shop"
    result = plan(event, Settings())
    assert (result.intent, result.target_key) == EXPECTED[name]


def test_a_merge_is_a_close_with_merged_true():
    recorded = json.loads((RECORDED / "pull_request_closed_merged.json").read_text())
    event = parse_event("pull_request", recorded["body"])
    assert event.merged
    assert plan(event, Settings()).reason == "pull request merged"
