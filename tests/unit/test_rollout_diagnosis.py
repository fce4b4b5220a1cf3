"""Why a rollout is not ready, read from what a real node showed (tests/samples/rollouts/,
recorded by `python -m tests.testbed.node.record_rollouts`): no cluster needed here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.domain.k8s import diagnosis

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "rollouts"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.json").read_text())


@pytest.mark.parametrize(
    ("case", "reason", "says"),
    [
        ("image-pull", "image-pull", "the image cannot be pulled: "),
        ("crash-loop", "crash-loop", "the app keeps crashing on start (exit code 3)"),
        ("out-of-memory", "out-of-memory", "the app was killed for using more memory than its limit"),
        ("unschedulable", "unschedulable", "no node can run the pod: 0/1 nodes are available"),
        ("quota", "quota", "the namespace quota rejects the pods: "),
        ("progress-deadline", "timeout", "has timed out progressing"),
    ],
)
def test_a_rollout_that_will_not_become_ready_says_why(case, reason, says):
    recorded = sample(case)
    found = diagnosis.rollout_problem(recorded["deployment"], recorded["pods"])
    assert found is not None
    assert not found.ready
    assert (found.reason, says in found.message) == (reason, True), found.message
    assert not diagnosis.rolled_out(recorded["deployment"])


def test_the_image_pull_message_names_the_image():
    recorded = sample("image-pull")
    found = diagnosis.rollout_problem(recorded["deployment"], recorded["pods"])
    assert found is not None
    assert "no-such-image" in found.message


def test_the_quota_refusal_comes_from_the_deployment_with_no_pod_at_all():
    recorded = sample("quota")
    assert recorded["pods"] == []
    assert diagnosis.deployment_problem(recorded["deployment"]) is not None


def test_an_available_deployment_is_rolled_out_and_nothing_is_wrong():
    recorded = sample("available")
    assert diagnosis.rolled_out(recorded["deployment"])
    assert diagnosis.rollout_problem(recorded["deployment"], recorded["pods"]) is None


def test_a_deployment_without_pods_yet_is_pending_the_one_state_worth_waiting_on():
    recorded = sample("available")
    found = diagnosis.rollout_problem(recorded["deployment"], [])
    assert found is not None
    assert found.reason == "pending"


def test_a_newer_generation_not_yet_observed_is_not_rolled_out():
    deployment = sample("available")["deployment"]
    deployment["metadata"]["generation"] = deployment["status"]["observedGeneration"] + 1
    assert not diagnosis.rolled_out(deployment)


def test_jobs_end_complete_or_failed():
    assert diagnosis.job_state(sample("job-complete")) == "complete"
    assert diagnosis.job_state(sample("job-failed")) == "failed"
    running = sample("job-complete")
    running["status"].pop("conditions")
    assert diagnosis.job_state(running) is None


def test_the_pod_selector_is_the_deployment_s_match_labels():
    assert diagnosis.pod_selector(sample("available")["deployment"]) == "app=available"
