"""Waiting for a Job on the real control plane: a pod its namespace's quota refuses."""

from __future__ import annotations

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
