"""On the real node: from `git push` to the preview's page serving that commit, for the
sample app with a warm build cache, with the phases; and whether kaniko's cache kept every
layer a one-line change did not touch.

The stack is the real node's (kubelet, containerd, the registry, kaniko, Traefik), Gitea,
PostgreSQL, Redis and the Procfile's processes, as tests/e2e/test_real_node.py starts them.
A PR of a small app is opened and built once (cold cache); then `--pushes` one-line
changes of its page are pushed one at a time, each timed until the page, fetched through
Traefik with the preview's password, shows that commit.

Phases of each push, from the timestamps the cluster and Gitea keep (whole seconds):
queue (push to the build Job created: webhook, planning, Gitea reads), build start (the
Job to its pod's first container started), fetch source (the build pod's init container),
build and push (kaniko: one process does both), job complete (kaniko's end to the Job
marked complete: shown, not on the way, since the build's wait takes its pod's end),
deploy (kaniko's end to the new app pod created), pull (the kubelet's "pulled in"
figure), start (pod created to its container started, less the pull), ready (started to
Ready), report (Ready to the success status), serve (the page's first answer of the new
commit).

Beside each push, the service's own deploy of the built image (its deploy, configure and
rollout phases) against `kubectl apply` + `rollout status` of the same objects in a fresh
namespace on the same node (the image already there: kubectl pulls nothing).

Then Debian's buildah (bench/buildah_baseline.py) builds and pushes the same app on the
same machine and registry, cold and then once per push with its layer cache, against the
kaniko container's own time in our Job (cold: the first build; cached: the pushes').

    .venv/bin/python -m bench.push_to_page [--pushes 5]
"""

from __future__ import annotations

import argparse
import functools
import re
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from kubernetes import client as k8s

from app.db import open_database
from app.domain.k8s.labels import LABEL_COMPONENT as COMPONENT
from app.domain.k8s.labels import LABEL_SHA
from app.models import Deployment
from bench.buildah_baseline import Buildah, write_context
from bench.stack import KINDS, kubectl_baseline, node_stack, objects_of, preview_served, report, summary
from tests.testbed import servers
from tests.testbed.gitea_repo import Repo, create_repository
from tests.testbed.kube.waiting import eventually
from tests.testbed.node.node import RealNode
from tests.testbed.node.service import BUILD_NAMESPACE, hooked_service_env, sample_app
from tests.testbed.service_processes import service_processes

SECRET = uuid.uuid4().hex
BRANCH = "feature/bench"
# The objects a preview has on the node (Gateway API routing through Traefik).
NODE_KINDS = f"{KINDS},httproute.gateway.networking.k8s.io,middleware.traefik.io"
PHASES = (
    "queue",
    "build_start",
    "fetch_source",
    "build_and_push",
    "job_complete",
    "deploy",
    "pull",
    "start",
    "ready",
    "report",
    "serve",
)


def bench_app(base_image: str, message: str) -> dict[str, str]:
    """The sample app with its Dockerfile in cache-friendly order: what changes on every push
    (the message) is copied last, so a rebuild can reuse the layers before it."""
    return {
        **sample_app(base_image, message),
        "Dockerfile": (
            f"FROM {base_image}\n"
            "COPY --chown=65532:65532 site/cgi-bin /site/cgi-bin\n"
            "RUN chmod 755 /site/cgi-bin/index.cgi\n"
            "COPY --chown=65532:65532 site/message.txt /site/message.txt\n"
            'CMD ["httpd", "-f", "-p", "8080", "-h", "/site"]\n'
        ),
    }


def _at(timestamp: Any) -> float:
    if isinstance(timestamp, datetime):
        return timestamp.timestamp()
    return datetime.strptime(str(timestamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def page_text(node: RealNode, host: str, auth: tuple[str, str] | None) -> str:
    try:
        answer = requests.get(node.ingress_url, headers={"Host": host}, auth=auth, timeout=5)
    except requests.RequestException:
        return ""
    return answer.text if answer.status_code == 200 else ""


def wait_for_page(node: RealNode, host: str, auth: tuple[str, str], expected: str, timeout: float) -> float:
    """The moment the page first answers `expected` (polled every 0.2 s)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if page_text(node, host, auth) == expected:
            return time.time()
        time.sleep(0.2)
    raise SystemExit(f"the page did not show {expected!r} within {timeout:.0f} s")


def build_pod(core: Any, sha: str) -> Any:
    pods = core.list_namespaced_pod(BUILD_NAMESPACE, label_selector=f"{LABEL_SHA}={sha[:12]}").items
    if not pods:
        raise SystemExit(f"no build pod for {sha[:12]}")
    return max(pods, key=lambda pod: _at(pod.metadata.creation_timestamp))


def cache_use(core: Any, pod: Any) -> dict[str, int]:
    """What kaniko's log says of its cache for this build: layers reused, and built anew."""
    log = core.read_namespaced_pod_log(pod.metadata.name, BUILD_NAMESPACE, container="kaniko")
    return {
        "reused": len(re.findall(r"Using caching version of cmd", log)),
        "built": len(re.findall(r"No cached layer found for cmd", log)),
    }


def pull_seconds(core: Any, namespace: str, pod_name: str) -> float:
    """The kubelet's own figure from its Pulled event (0 when the image was already present)."""
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod_name}").items
    for event in events:
        if event.reason == "Pulled":
            found = re.search(r" in ([0-9.]+)(ms|s)", event.message or "")
            if found:
                return float(found.group(1)) / (1000 if found.group(2) == "ms" else 1)
    return 0.0


def succeeded(repo: Repo, sha: str) -> bool:
    return (repo.latest_status(sha) or {}).get("status") == "success"


def completed_job(batch: Any, name: str, timeout: float = 30) -> Any:
    """The build Job once its controller marked it complete: the service goes on when its pod
    succeeds, so the page may be served before that mark."""
    deadline = time.time() + timeout
    while True:
        job = batch.read_namespaced_job(name, BUILD_NAMESPACE)
        if job.status.completion_time is not None:
            return job
        if time.time() > deadline:
            raise SystemExit(f"the build Job {name} was not marked complete within {timeout:.0f} s")
        time.sleep(0.2)


def phases_of(core: Any, repo: Repo, namespace: str, sha: str, pushed: float, served: float) -> dict[str, float]:
    built = build_pod(core, sha)
    batch: Any = k8s.BatchV1Api(core.api_client)
    job = completed_job(batch, built.metadata.labels["job-name"])
    job_created = _at(job.metadata.creation_timestamp)
    completed = _at(job.status.completion_time)
    fetch = built.status.init_container_statuses[0].state.terminated
    kaniko = built.status.container_statuses[0].state.terminated
    app = max(
        core.list_namespaced_pod(namespace, label_selector=f"{COMPONENT}=app").items,
        key=lambda pod: _at(pod.metadata.creation_timestamp),
    )
    created = _at(app.metadata.creation_timestamp)
    started = _at(app.status.container_statuses[0].state.running.started_at)
    ready = next(_at(c.last_transition_time) for c in app.status.conditions if c.type == "Ready")
    status = repo.latest_status(sha) or {}
    reported = datetime.fromisoformat(status["created_at"].replace("Z", "+00:00")).timestamp()
    pull = pull_seconds(core, namespace, app.metadata.name)
    return {
        "queue": job_created - pushed,
        "build_start": _at(fetch.started_at) - job_created,  # its pod scheduled, sandbox and volumes made
        "fetch_source": _at(fetch.finished_at) - _at(fetch.started_at),
        "build_and_push": _at(kaniko.finished_at) - _at(kaniko.started_at),
        # The Job controller's word on its pod: the service no longer waits for it (it watches the pod).
        "job_complete": completed - _at(kaniko.finished_at),
        "deploy": created - _at(kaniko.finished_at),
        "pull": pull,
        "start": max(0.0, started - created - pull),
        "ready": ready - started,
        "report": reported - ready,
        "serve": served - max(ready, reported),
    }


def our_deploy_seconds(sha: str) -> float:
    """The service's own figure for applying a built image and seeing it roll out: its
    deploy (namespace and guards), configure (the app's objects) and rollout phases."""
    timings = Deployment.get(Deployment.head_sha == sha).timings or {}
    return sum(float(timings.get(name, 0)) for name in ("deploy", "configure", "rollout"))


def our_build_seconds(sha: str) -> float:
    """The service's build phase: the Job made, its pod started, source fetched, kaniko run."""
    return float((Deployment.get(Deployment.head_sha == sha).timings or {}).get("build", 0))


def buildah_figures(node: RealNode, work: Path, builds: int) -> dict[str, float] | str:
    """buildah bud + push of the same app on the same machine and registry: once cold, then
    `builds` one-line changes with its local layer cache."""
    if not Buildah.available():
        return "buildah is not installed (apt-get install buildah)"
    buildah = Buildah(work / "buildah", node.registry, node.registry_user, node.registry_password)
    context = write_context(work / "buildah-context", bench_app(node.image("base"), "buildah 0"))
    try:
        cold = buildah.build_and_push(context, "0")
        cached = []
        for build in range(1, builds + 1):
            (context / "site" / "message.txt").write_text(f"buildah {build}\n")
            cached.append(buildah.build_and_push(context, str(build)))
    finally:
        buildah.forget()
    print(f"buildah: cold {cold:.1f} s, cached {', '.join(f'{c:.1f}' for c in cached)} s", flush=True)
    return {"cold": round(cold, 1), "cached_p50": round(statistics.median(cached), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-push-"))
    with node_stack() as (redis, postgres, gitea, node):
        port = servers.free_port()
        database_url = postgres.create_database(f"bench_{uuid.uuid4().hex[:8]}")
        env = {
            **hooked_service_env(node, gitea, redis.url, database_url, port, SECRET, "bench"),
        }
        api = node.plane.api_client()
        core: Any = k8s.CoreV1Api(api)
        (work / "logs").mkdir()
        print(f"the service's logs: {work / 'logs'}", flush=True)
        with service_processes(env, work / "logs", port):
            repo = create_repository(
                gitea,
                f"bench-{uuid.uuid4().hex[:6]}",
                work / "repo",
                webhook_url=f"http://127.0.0.1:{port}/webhooks/gitea",
                secret=SECRET,
                files=bench_app(node.image("base"), "main"),
            )
            pushed = time.time()
            sha = repo.commit(BRANCH, {"site/message.txt": "push 0\n"}, "Push 0")
            repo.open_pr(BRANCH)
            host, namespace, auth = preview_served(repo, sha, core, "the first preview")
            served = wait_for_page(node, host, auth, f"commit {sha}\npush 0\n", timeout=60)
            cold = served - pushed
            open_database(database_url)
            kaniko_cold = phases_of(core, repo, namespace, sha, pushed, served)["build_and_push"]
            print(
                f"cold: push and PR to the page {cold:.1f} s; kaniko {kaniko_cold:.0f} s;"
                f" our build step {our_build_seconds(sha):.1f} s; cache {cache_use(core, build_pod(core, sha))}",
                flush=True,
            )

            apps: Any = k8s.AppsV1Api(api)
            [deployment] = apps.list_namespaced_deployment(namespace, label_selector=f"{COMPONENT}=app").items
            app = str(deployment.metadata.name)
            totals, phases, caches, ours, kubectl, builds = [], [], [], [], [], []
            for push in range(1, args.pushes + 1):
                pushed = time.time()
                sha = repo.commit(BRANCH, {"site/message.txt": f"push {push}\n"}, f"Push {push}")
                served = wait_for_page(node, host, auth, f"commit {sha}\npush {push}\n", timeout=300)
                eventually(functools.partial(succeeded, repo, sha), timeout=60, what=f"success status on {sha[:12]}")
                totals.append(served - pushed)
                phases.append(phases_of(core, repo, namespace, sha, pushed, served))
                caches.append(cache_use(core, build_pod(core, sha)))
                ours.append(our_deploy_seconds(sha))
                builds.append(our_build_seconds(sha))
                # The same objects by kubectl in a fresh namespace, the image already on the node;
                # deleted and waited for, so Traefik never has two routes for the host.
                template = objects_of(node.plane.kubeconfig, namespace, NODE_KINDS)
                kubectl.append(kubectl_baseline(node.plane.kubeconfig, template, namespace, app, work, push, True))
                said = ", ".join(f"{name} {phases[-1][name]:.1f}" for name in PHASES)
                print(f"push {push}: {totals[-1]:.1f} s ({said}); cache {caches[-1]}", flush=True)
                print(f"  our deploy of the built image {ours[-1]:.2f} s, kubectl {kubectl[-1]:.2f} s", flush=True)
        buildah = buildah_figures(node, work, args.pushes)
        api.close()
    kaniko_cached = statistics.median(p["build_and_push"] for p in phases)
    report(
        "push_to_page",
        {
            "pushes": args.pushes,
            "cold_first_preview_s": round(cold, 1),
            "push_to_page_s": summary(totals, digits=1),
            "phases_p50_s": {name: round(statistics.median(p[name] for p in phases), 1) for name in PHASES},
            "our_deploy_s": summary(ours),
            "kubectl_apply_rollout_s": summary(kubectl),
            "deploy_p50_ratio": round(statistics.median(ours) / statistics.median(kubectl), 2),
            "our_build_step_cached_s": summary(builds, digits=1),
            "kaniko_build_and_push_s": {"cold": round(kaniko_cold, 1), "cached_p50": round(kaniko_cached, 1)},
            "buildah_build_and_push_s": buildah,
            "cache_layers_p50": {key: statistics.median(cache[key] for cache in caches) for key in ("reused", "built")},
        },
    )


if __name__ == "__main__":
    main()
