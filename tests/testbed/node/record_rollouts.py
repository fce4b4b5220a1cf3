"""`python -m tests.testbed.node.record_rollouts`: record what the real node shows for the rollouts
app/domain/k8s/diagnosis.py reads, into tests/samples/rollouts/.

Each case is a Deployment (or a Job) made to end one way on a real kubelet: an image the
registry does not have, an app that exits, one that outgrows its memory limit, one no node can
fit, one the quota refuses, one never ready past its progress deadline, one that works. Once
the cluster shows the state the case is about, the Deployment and its pods are written as the
API server serves them (JSON, without managedFields). Run again when Kubernetes is upgraded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.testbed.node.node import RealNode, real_node

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "rollouts"
NAMESPACE = "rollout-samples"
QUOTA_NAMESPACE = "rollout-samples-quota"


def _deployment(name: str, image: str, command: list[str], **container: Any) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "app", "image": image, "command": command, **container}],
            },
        },
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def _job(name: str, image: str, command: list[str]) -> dict[str, Any]:
    pod = {"restartPolicy": "Never", "containers": [{"name": "job", "image": image, "command": command}]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": pod}},
    }


def _get(node: RealNode, namespace: str, *what: str) -> Any:
    return json.loads(node.plane.kubectl("get", "-n", namespace, "-o", "json", *what).stdout)


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    obj["metadata"].pop("managedFields", None)
    return obj


def _pods(node: RealNode, namespace: str, app: str) -> list[dict[str, Any]]:
    return [_clean(pod) for pod in _get(node, namespace, "pods", "-l", f"app={app}")["items"]]


def _wait(what: str, shown: Callable[[], bool], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not shown():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the cluster never showed {what}")
        time.sleep(2)


def _container_state(pods: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = (pods[0].get("status") or {}).get("containerStatuses") or [{}] if pods else [{}]
    return statuses[0]


def _waiting_reason(pods: list[dict[str, Any]]) -> str:
    return str(((_container_state(pods).get("state") or {}).get("waiting") or {}).get("reason") or "")


def _last_reason(pods: list[dict[str, Any]]) -> str:
    return str(((_container_state(pods).get("lastState") or {}).get("terminated") or {}).get("reason") or "")


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def record(node: RealNode) -> list[str]:
    base = node.image("base")
    sleep = ["sleep", "3600"]
    cases: dict[str, tuple[dict[str, Any], str, Callable[[dict[str, Any], list[dict[str, Any]]], bool]]] = {
        "image-pull": (
            _deployment("image-pull", f"{node.registry}/no-such-image:1", sleep),
            NAMESPACE,
            lambda d, pods: _waiting_reason(pods) == "ImagePullBackOff",
        ),
        "crash-loop": (
            _deployment("crash-loop", base, ["sh", "-c", "echo starting; exit 3"]),
            NAMESPACE,
            lambda d, pods: _waiting_reason(pods) == "CrashLoopBackOff",
        ),
        "out-of-memory": (
            _deployment(
                "out-of-memory",
                base,
                ["sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"],
                resources={"limits": {"memory": "24Mi"}},
            ),
            NAMESPACE,
            lambda d, pods: _waiting_reason(pods) == "CrashLoopBackOff" and _last_reason(pods) == "OOMKilled",
        ),
        "unschedulable": (
            _deployment("unschedulable", base, sleep, resources={"requests": {"cpu": "64"}}),
            NAMESPACE,
            lambda d, pods: bool(pods) and _condition(pods[0], "PodScheduled").get("status") == "False",
        ),
        "quota": (
            _deployment("quota", base, sleep),
            QUOTA_NAMESPACE,
            lambda d, pods: _condition(d, "ReplicaFailure").get("status") == "True",
        ),
        "progress-deadline": (
            {
                **_deployment("progress-deadline", base, sleep, readinessProbe={"exec": {"command": ["false"]}}),
            },
            NAMESPACE,
            lambda d, pods: _condition(d, "Progressing").get("reason") == "ProgressDeadlineExceeded",
        ),
        "available": (
            _deployment("available", base, sleep),
            NAMESPACE,
            lambda d, pods: (d.get("status") or {}).get("availableReplicas") == 1,
        ),
    }
    cases["progress-deadline"][0]["spec"]["progressDeadlineSeconds"] = 10
    for namespace in (NAMESPACE, QUOTA_NAMESPACE):
        node.plane.kubectl("create", "namespace", namespace)
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pods"},
        "spec": {"hard": {"pods": "0"}},
    }
    node.plane.kubectl("apply", "-n", QUOTA_NAMESPACE, "-f", "-", input=json.dumps(quota))
    for deployment, namespace, _ in cases.values():
        node.plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(deployment))
    jobs = {"job-complete": ["true"], "job-failed": ["sh", "-c", "exit 1"]}
    for name, command in jobs.items():
        node.plane.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(_job(name, base, command)))

    SAMPLES.mkdir(parents=True, exist_ok=True)
    written = []
    for case, (deployment, namespace, shown) in cases.items():
        name = deployment["metadata"]["name"]

        def now() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            return _clean(_get(node, namespace, "deployment", name)), _pods(node, namespace, name)  # noqa: B023

        _wait(case, lambda: shown(*now()))  # noqa: B023
        found, pods = now()
        (SAMPLES / f"{case}.json").write_text(json.dumps({"deployment": found, "pods": pods}, indent=1) + "\n")
        written.append(case)
    for name in jobs:

        def finished() -> bool:
            conditions = _get(node, NAMESPACE, "job", name).get("status", {}).get("conditions") or []  # noqa: B023
            return any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)

        _wait(name, finished)
        (SAMPLES / f"{name}.json").write_text(json.dumps(_clean(_get(node, NAMESPACE, "job", name)), indent=1) + "\n")
        written.append(name)
    return written


def main() -> None:
    with real_node() as node:
        for case in record(node):
            print(f"recorded {SAMPLES / case}.json")


if __name__ == "__main__":
    main()
