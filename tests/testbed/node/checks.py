"""What the real node's tests ask of it: a commit's success status (or, failing, what the cluster
shows about why), a page through Traefik, a script run in a pod of a namespace."""

from __future__ import annotations

import uuid

import pytest
import requests
from kubernetes import client as k8s

from tests.testbed.kube.waiting import eventually


def pod_logs(real_node, namespace: str) -> str:
    """Every container's log in a namespace: what a failed build or rollout said."""
    api = real_node.plane.api_client()
    core, found = k8s.CoreV1Api(api), []
    for pod in core.list_namespaced_pod(namespace).items:
        for container in [*(pod.spec.init_containers or []), *pod.spec.containers]:
            try:
                log = core.read_namespaced_pod_log(pod.metadata.name, namespace, container=container.name)
            except k8s.ApiException as error:
                log = f"(no log: {error.reason})"
            found.append(f"--- {pod.metadata.name}/{container.name} ---\n{log[-3000:]}")
    api.close()
    return "\n".join(found)


def success_status(
    repo, sha, real_node, timeout=300, namespace=None, build_namespace="preview-builds", service_logs=None
):
    """The commit's `success` status; a failure, or a timeout, fails the test with what the
    cluster shows (the builds' logs, the preview namespace's objects when it is known, and
    `service_logs()` when the service runs in the cluster)."""

    def explain(headline: str) -> str:
        found = [headline, pod_logs(real_node, build_namespace)]
        if service_logs:
            found.append(service_logs())
        if namespace:
            listing = real_node.plane.kubectl("get", "pods,jobs,statefulsets,pvc", "-n", namespace, check=False)
            found += [listing.stdout + listing.stderr, pod_logs(real_node, namespace)]
        return "\n".join(found)

    def probe():
        status = repo.latest_status(sha)
        if status and status["status"] == "failure":
            pytest.fail(explain(status["description"]))
        return status if status and status["status"] == "success" else None

    try:
        return eventually(probe, timeout=timeout, interval=1, what=f"success status on {sha[:12]}")
    except AssertionError as timeout_error:
        pytest.fail(explain(f"{timeout_error}; the last status: {repo.latest_status(sha)}"))


def page(real_node, host, auth=None, method="GET", headers=None):
    return requests.request(
        method, real_node.ingress_url, headers={"Host": host, **(headers or {})}, auth=auth, timeout=10
    )


def in_pod(real_node, namespace: str, script: str, timeout: float = 120) -> tuple[int, str]:
    """Run `script` in a pod of `namespace` (the curl image, unprivileged, as PodSecurity
    `restricted` wants it); return its exit code and log. The pod is deleted afterwards."""
    api = real_node.plane.api_client()
    core = k8s.CoreV1Api(api)
    name = f"probe-{uuid.uuid4().hex[:6]}"
    restricted = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    limits = {"cpu": "200m", "memory": "64Mi", "ephemeral-storage": "64Mi"}
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "containers": [
                    {
                        "name": "probe",
                        "image": real_node.image("git"),
                        "command": ["sh", "-c", script],
                        "securityContext": restricted,
                        "resources": {"requests": limits, "limits": limits},
                    }
                ],
            },
        },
    )
    try:
        pod = eventually(
            lambda: (
                (found := core.read_namespaced_pod(name, namespace)).status.phase in ("Succeeded", "Failed") and found
            ),
            timeout=timeout,
            interval=0.5,
            what=f"pod {name} to finish",
        )
        code = pod.status.container_statuses[0].state.terminated.exit_code
        return code, core.read_namespaced_pod_log(name, namespace)
    finally:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        api.close()
