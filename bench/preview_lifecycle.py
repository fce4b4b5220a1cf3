"""Webhook to ready against the cluster's own time, and PR close to teardown.

On the real test bed (Gitea, the Procfile's processes with one worker, the control
plane with KWOK), `--runs` rounds, interleaved:

- service: open a PR (its preview file names an image: no build) and time from its
  PR-opened delivery reaching the service (the service's record of it) until Gitea
  shows the `preview` status success (asked every 5 ms from the moment a watch on the
  cluster sees the app available), split into phases from the service's own
  records (queue, planning and Gitea's reads, guards, configure, rollout, status seen); the time
  from the PR API call is printed too (Gitea sends the delivery while it is still
  opening the PR, hundreds of milliseconds of its own);
- baseline: `kubectl apply` of the identical objects (copied from that round's
  preview, in a new namespace) plus `kubectl rollout status`;
- teardown: close the PR and time from its delivery reaching the service until the
  namespace's deletion is requested (polled every 50 ms).

Prints p50/p95 of each, the ratio of the p50s (target 1.0 at most) and teardown p50
(target < 2 s).

    .venv/bin/python -m bench.preview_lifecycle [--runs 20]
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import datetime, timedelta
from functools import partial

from kubernetes import client as k8s
from kubernetes import watch

from app.db import open_database
from app.domain.k8s.labels import LABEL_MANAGED_BY, MANAGED_BY, PREFIX
from app.models import Deployment, Preview, WebhookDelivery
from bench.stack import IMAGE, Stack, kubectl_baseline, now_utc, objects_of, preview_stack, report, summary
from tests.testbed.kube.waiting import eventually

MANAGED, HEAD_SHA = f"{LABEL_MANAGED_BY}={MANAGED_BY}", f"{PREFIX}/head-sha"


def deletion_requested(stack: Stack, name: str) -> bool:
    namespace = stack.namespace(name)
    return namespace is None or namespace.metadata is None or namespace.metadata.deletion_timestamp is not None


def success(stack_repo, sha: str) -> bool:
    status = stack_repo.latest_status(sha)
    return bool(status and status["status"] == "success")


class AvailableWatch:
    """Tells when the cluster has a Deployment of `sha` available, from a watch opened before
    the PR is (kubectl rollout status learns it the same way)."""

    def __init__(self, api: k8s.ApiClient, sha: str) -> None:
        self.available = threading.Event()
        self._apps, self._sha, self._watch = k8s.AppsV1Api(api), sha, watch.Watch()
        listed = self._apps.list_deployment_for_all_namespaces(label_selector=MANAGED, limit=1).metadata
        version = listed.resource_version if listed is not None else None
        self._thread = threading.Thread(target=self._follow, args=(version,), daemon=True)
        self._thread.start()

    def _follow(self, version: str | None) -> None:
        events = self._watch.stream(
            self._apps.list_deployment_for_all_namespaces,
            label_selector=MANAGED,
            resource_version=version,
            timeout_seconds=180,
        )
        for event in events:
            deployment = event["object"]
            template = deployment.spec.template.metadata
            status = deployment.status
            if (template.annotations or {}).get(HEAD_SHA) != self._sha or status is None:
                continue
            if (status.available_replicas or 0) >= (deployment.spec.replicas or 1) and (
                status.observed_generation or 0
            ) >= (deployment.metadata.generation or 0):
                self.available.set()
                self._watch.stop()
                return

    def close(self) -> None:
        self._watch.stop()


def seen_success(repo, sha: str, available: threading.Event) -> float:
    """perf_counter() when Gitea first answers that `sha`'s preview status is success: asked
    every 5 ms once the app is available (the status cannot come sooner), every 50 ms before
    that in case the watch missed it. A poll every 50 ms from the start added a lag of 25 ms on
    average, and up to 50, that kubectl's own figure does not have."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if success(repo, sha):
            return time.perf_counter()
        if not available.wait(0.05):
            continue
        time.sleep(0.005)
    raise AssertionError(f"no success status for {sha[:12]} after 180 s")


def first_delivery(preview_id: int, sha: str, intent: str) -> WebhookDelivery:
    """The first delivery of `intent` the service stored for this preview and commit."""
    delivery: WebhookDelivery = (
        WebhookDelivery.select()
        .where(
            (WebhookDelivery.preview == preview_id)
            & (WebhookDelivery.head_sha == sha)
            & (WebhookDelivery.intent == intent)
        )
        .order_by(WebhookDelivery.id)
        .first()
    )
    return delivery


def phases(preview: Preview, sha: str, delivery: WebhookDelivery, seen: datetime) -> dict[str, float]:
    """Where the service's time went from the delivery on, from its own records (seconds)."""
    deployment = Deployment.get((Deployment.preview == preview.id) & (Deployment.head_sha == sha))
    timings = deployment.timings or {}
    received = delivery.received_at
    found = {
        # Stored, queued, taken by a worker and planned: planning makes the new PR's preview row.
        "queue_and_plan": (preview.created_at - received).total_seconds(),
        # Gitea's PR and preview file, the trust check, budget and slot.
        "gitea_and_checks": (deployment.created_at - preview.created_at).total_seconds(),
        "build": timings.get("build", 0),
        "guards": timings.get("deploy", 0),  # namespace, access, quota, limits, network policy
        "configure": timings.get("configure", 0),  # secret, deployment, service, ingress
        "rollout": timings.get("rollout", 0),
    }
    # The rest: the move to ready and the status sent, until Gitea answers that it shows it
    # (the comment, sent after the status, is not waited for), seen as closely as we can.
    found["status_seen"] = (seen - received).total_seconds() - sum(found.values())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    from_pr_api, service_times, baseline_times, teardown_times = [], [], [], []
    phase_rows: list[dict[str, float]] = []
    with preview_stack(workers=1) as stack:
        open_database(stack.env["DATABASE_URL"])
        repo = stack.repository("lifecycle", f"image: {IMAGE}\nport: 8080\n")
        for number in range(args.runs + 1):  # round 0 warms up
            sha = repo.commit(f"change-{number}", {"change.txt": f"{number}\n"}, f"Change {number}")
            repo.git("checkout", "main")
            available = AvailableWatch(stack.api, sha)
            started = time.perf_counter()
            pr = repo.open_pr(f"change-{number}", f"Change {number}")
            seen = seen_success(repo, sha, available.available)
            seen_ready, ready_from_pr = now_utc() - timedelta(seconds=time.perf_counter() - seen), seen - started
            available.close()
            preview = Preview.get((Preview.pr_number == pr) & (Preview.head_sha == sha))
            namespace = preview.namespace
            [deployment] = k8s.AppsV1Api(stack.api).list_namespaced_deployment(namespace).items
            app = str(deployment.metadata.name) if deployment.metadata else ""
            baseline = kubectl_baseline(
                stack.plane.kubeconfig,
                objects_of(stack.plane.kubeconfig, namespace),
                namespace,
                app,
                stack.folder,
                number,
            )
            repo.close_pr(pr)
            eventually(
                partial(deletion_requested, stack, namespace),
                timeout=60,
                interval=0.05,
                what=f"{namespace} deletion",
            )
            seen_deleting = now_utc()
            if number == 0:
                continue
            opened = first_delivery(preview.id, sha, "deploy")
            ready = (seen_ready - opened.received_at).total_seconds()
            teardown = (seen_deleting - first_delivery(preview.id, sha, "teardown").received_at).total_seconds()
            from_pr_api.append(ready_from_pr)
            service_times.append(ready)
            baseline_times.append(baseline)
            teardown_times.append(teardown)
            phase_rows.append(phases(preview, sha, opened, seen_ready))
            print(
                f"run {number}: service {ready:.2f} s (from the PR API call {ready_from_pr:.2f} s)"
                f"  kubectl {baseline:.2f} s  teardown {teardown:.2f} s",
                flush=True,
            )
    service, baseline_summary = summary(service_times), summary(baseline_times)
    report(
        "preview_lifecycle",
        {
            "runs": args.runs,
            "delivery_to_ready_s": service,
            "kubectl_apply_rollout_s": baseline_summary,
            "ready_p50_ratio": round(service["p50"] / baseline_summary["p50"], 2),
            "phases_p50_s": {
                key: round(sorted(row[key] for row in phase_rows)[len(phase_rows) // 2], 3) for key in phase_rows[0]
            },
            "pr_api_call_to_ready_s": summary(from_pr_api),
            "close_delivery_to_deletion_s": summary(teardown_times),
        },
    )


if __name__ == "__main__":
    main()
