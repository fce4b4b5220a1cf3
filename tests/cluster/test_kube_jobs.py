"""Waiting for a Job on the real control plane: a pod its namespace's quota refuses; a build's one pod."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client as k8s

from app.adapters.kube import Kube, load_configuration

pytestmark = pytest.mark.kube


def test_a_pod_refused_by_the_quota_fails_a_migrate_job_at_once_but_a_build_waits(
    kube_cluster, kube_api, kube_namespace
):
    # Found on the real node: a second push's migrate Job, beside the app and its database,
    # went past the namespace's limits.cpu and waited, podless, until the rollout timeout.
    core, batch = k8s.CoreV1Api(kube_api), k8s.BatchV1Api(kube_api)
    core.create_namespaced_resource_quota(
        kube_namespace,
        {"metadata": {"name": "small"}, "spec": {"hard": {"limits.cpu": "100m", "limits.memory": "1Gi"}}},
    )
    container = {
        "name": "migrate",
        "image": "registry.preview.test/app@sha256:" + "a" * 64,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "64Mi"}},
    }
    pod = {"restartPolicy": "Never", "containers": [container]}
    batch.create_namespaced_job(
        kube_namespace, {"metadata": {"name": "migrate-1"}, "spec": {"backoffLimit": 0, "template": {"spec": pod}}}
    )
    kube = Kube(load_configuration(str(kube_cluster.kubeconfig)))
    try:
        outcome = kube.wait_for_job(kube_namespace, "migrate-1", timeout=120, quota_refusal_is_final=True)
        assert (outcome.state, outcome.reason) == ("failed", "quota")
        assert "exceeded quota" in outcome.message
        assert "limits.cpu" in outcome.message
        # A build waits its turn for its namespace's quota: the same refusal is not final there.
        assert kube.wait_for_job(kube_namespace, "migrate-1", timeout=3).state == "timeout"
    finally:
        kube.close()


def test_a_job_the_quota_refused_until_its_deadline_says_so(kube_cluster, kube_api, kube_namespace):
    # The screenshot Job waits for the quota (an old pod stopping after a rollout holds a
    # share of it for a while); when it never fits, its failure says why, not just "failed".
    core, batch = k8s.CoreV1Api(kube_api), k8s.BatchV1Api(kube_api)
    core.create_namespaced_resource_quota(
        kube_namespace, {"metadata": {"name": "small"}, "spec": {"hard": {"limits.memory": "64Mi"}}}
    )
    container = {
        "name": "screenshots",
        "image": "registry.preview.test/chromium@sha256:" + "c" * 64,
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
    }
    spec = {
        "backoffLimit": 0,
        "activeDeadlineSeconds": 5,
        "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
    }
    batch.create_namespaced_job(kube_namespace, {"metadata": {"name": "screenshots-1"}, "spec": spec})
    kube = Kube(load_configuration(str(kube_cluster.kubeconfig)))
    try:
        outcome = kube.wait_for_job(kube_namespace, "screenshots-1", timeout=120, single_pod=True)
        assert (outcome.state, outcome.reason) == ("failed", "quota")
        assert "limits.memory" in outcome.message
    finally:
        kube.close()


def single_pod_job(name: str, behaviour: str | None = None) -> dict:
    labels = {"testbed.preview/behaviour": behaviour} if behaviour else {}
    container = {"name": "build", "image": "registry.preview.test/kaniko@sha256:" + "b" * 64}
    template = {"metadata": {"labels": labels}, "spec": {"restartPolicy": "Never", "containers": [container]}}
    return {"metadata": {"name": name}, "spec": {"backoffLimit": 0, "template": template}}


@pytest.mark.parametrize(("behaviour", "expected"), [(None, "complete"), ("slow", "complete"), ("fail", "failed")])
def test_a_single_pod_job_ends_with_its_pod(kube_cluster, kube_api, kube_namespace, behaviour, expected):
    # The build's wait: the pod's end, not the Job controller's word on it seconds later.
    batch = k8s.BatchV1Api(kube_api)
    job = batch.create_namespaced_job(kube_namespace, single_pod_job("build-1", behaviour))
    kube = Kube(load_configuration(str(kube_cluster.kubeconfig)))
    try:
        outcome = kube.wait_for_job(kube_namespace, "build-1", timeout=120, single_pod=True)
    finally:
        kube.close()
    assert outcome.state == expected
    [pod] = k8s.CoreV1Api(kube_api).list_namespaced_pod(kube_namespace, label_selector="job-name=build-1").items
    assert pod.metadata.labels["batch.kubernetes.io/controller-uid"] == job.metadata.uid
    assert pod.status.phase == ("Succeeded" if expected == "complete" else "Failed")
    if expected == "complete":  # the digest the pod wrote, as kaniko's --digest-file does
        assert outcome.message == pod.status.container_statuses[0].state.terminated.message
        assert outcome.message.startswith("sha256:")


def test_a_single_pod_job_deleted_while_waited_for_is_missing(kube_cluster, kube_api, kube_namespace):
    batch = k8s.BatchV1Api(kube_api)
    # Its pod stays Pending (the image cannot be pulled), so only the deletion ends the wait.
    batch.create_namespaced_job(kube_namespace, single_pod_job("build-2", "image-pull"))
    deleter = threading.Timer(
        1.5, lambda: batch.delete_namespaced_job("build-2", kube_namespace, propagation_policy="Background")
    )
    kube = Kube(load_configuration(str(kube_cluster.kubeconfig)))
    started = time.monotonic()
    deleter.start()
    try:
        outcome = kube.wait_for_job(kube_namespace, "build-2", timeout=60, single_pod=True)
    finally:
        deleter.join()
        kube.close()
    assert outcome.state == "missing"
    assert 1.5 <= time.monotonic() - started < 20  # seen at the end of a watch window, not at the timeout
