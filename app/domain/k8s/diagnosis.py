"""Reading a rollout from what the cluster shows: whether a Deployment is available, why its
pods are not (in words a developer understands), and how a Job ended. The objects are the API
server's JSON (dicts), so recorded samples test this without a cluster."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Container waiting reasons that will not fix themselves while we wait.
IMAGE_PULL = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})


@dataclass(frozen=True)
class RolloutOutcome:
    ready: bool
    reason: str = ""  # image-pull | crash-loop | out-of-memory | unschedulable | quota | timeout | stopped | pending
    message: str = ""


def _conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list((obj.get("status") or {}).get("conditions") or [])


def rolled_out(deployment: dict[str, Any]) -> bool:
    """The newest revision is what runs, all of it available."""
    spec, status = deployment.get("spec") or {}, deployment.get("status")
    if status is None or status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
        return False
    wanted = spec.get("replicas", 1)
    return (
        status.get("updatedReplicas", 0) == wanted
        and status.get("availableReplicas", 0) == wanted
        and status.get("replicas", 0) == wanted
    )


def pod_selector(deployment: dict[str, Any]) -> str:
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{key}={value}" for key, value in labels.items())


def deployment_problem(deployment: dict[str, Any]) -> RolloutOutcome | None:
    """What the Deployment itself says is wrong: its pods refused, or its deadline passed."""
    for condition in _conditions(deployment):
        text = condition.get("message") or ""
        refused = condition.get("type") == "ReplicaFailure" and condition.get("status") == "True"
        if refused and ("exceeded quota" in text or "forbidden" in text):
            return RolloutOutcome(False, "quota", f"the namespace quota rejects the pods: {text}")
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return RolloutOutcome(False, "timeout", text or "progress deadline exceeded")
    return None


def pod_problem(pod: dict[str, Any]) -> RolloutOutcome | None:
    """Why one pod will not become ready by waiting: its image, a crash loop, no node for it."""
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        last = (container.get("lastState") or {}).get("terminated")
        reason = (waiting or {}).get("reason")
        if reason in IMAGE_PULL:
            why = (waiting or {}).get("message") or reason
            return RolloutOutcome(False, "image-pull", f"the image cannot be pulled: {why}")
        if reason == "CrashLoopBackOff":
            if last and last.get("reason") == "OOMKilled":
                return RolloutOutcome(False, "out-of-memory", "the app was killed for using more memory than its limit")
            code = f" (exit code {last.get('exitCode')})" if last else ""
            return RolloutOutcome(False, "crash-loop", f"the app keeps crashing on start{code}")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return RolloutOutcome(False, "unschedulable", f"no node can run the pod: {condition.get('message')}")
    return None


def rollout_problem(deployment: dict[str, Any], pods: list[dict[str, Any]]) -> RolloutOutcome | None:
    """Why the Deployment is not available yet; None when nothing says it will not become so.
    `pending` (no pods yet) is the one answer worth waiting on."""
    found = deployment_problem(deployment)
    if found is not None:
        return found
    for pod in pods:
        found = pod_problem(pod)
        if found is not None:
            return found
    return None if pods else RolloutOutcome(False, "pending", "no pods yet")


def job_state(job: dict[str, Any]) -> str | None:
    """complete | failed | None while it runs."""
    for condition in _conditions(job):
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "complete"
        if condition.get("status") == "True" and condition.get("type") in ("Failed", "FailureTarget"):
            return "failed"
    return None
