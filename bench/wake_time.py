"""On the real node: how long a sleeping preview takes from a visitor's first request to the
app's own answer, through Traefik and behind the preview's password.

The stack is the real node's (kubelet, containerd, the registry, kaniko, Traefik), Gitea,
PostgreSQL, Redis and the Procfile's processes, as tests/e2e/test_real_node.py starts them,
with the scheduler every 2 s. The sample app's preview file asks to sleep after 5 s
without a visit. Each of `--wakes` rounds waits until the preview sleeps (state `sleeping`,
its pod gone), then sends a browser's GET with the password and polls the page every 0.2 s
until the app answers; the first answer is the wake page. The issue's bound: p95 < 10 s.
Also counted: wakes whose new pod failed a readiness probe (the kubelet's Unhealthy
events): the next probe comes a period (5 s) later.

    .venv/bin/python -m bench.wake_time [--wakes 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests
from kubernetes import client as k8s

from bench.stack import node_stack, preview_served, report, summary
from tests.testbed import servers
from tests.testbed.gitea_repo import create_repository
from tests.testbed.kube.waiting import eventually
from tests.testbed.node.node import RealNode
from tests.testbed.node.service import hooked_service_env, sample_app
from tests.testbed.service_processes import service_processes

SECRET = uuid.uuid4().hex
API_TOKEN = "bench-token-" + uuid.uuid4().hex
BRANCH = "feature/sleepy"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def visit(node: RealNode, host: str, auth: tuple[str, str]) -> requests.Response | None:
    try:
        return requests.get(node.ingress_url, headers={"Host": host, "User-Agent": BROWSER}, auth=auth, timeout=5)
    except requests.RequestException:
        return None


def app_pods(core: Any, namespace: str) -> list[Any]:
    return list(core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/component=app").items)


def probe_failures(core: Any, namespace: str, pod: str) -> int:
    """The readiness probe's failures the kubelet reported for `pod` (its Unhealthy events)."""
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod},reason=Unhealthy")
    return sum(int(event.count or 1) for event in events.items)


def state_of(url: str, namespace: str) -> str:
    listed = requests.get(
        f"{url}/api/previews?per_page=200", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10
    ).json()
    return str(next(p for p in listed["items"] if p["namespace"] == namespace)["state"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wakes", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-wake-"))
    with node_stack() as (redis, postgres, gitea, node):
        port = servers.free_port()
        web_host, web_port = node.expose(port)
        database = postgres.create_database(f"bench_{uuid.uuid4().hex[:8]}")
        env = {
            **hooked_service_env(node, gitea, redis.url, database, port, SECRET, "bench"),
            "API_TOKENS": API_TOKEN,
            "WAKE_ENDPOINT": f"{web_host}:{web_port}",
            "SCHEDULER_INTERVAL": "2s",
        }
        api = node.plane.api_client()
        core: Any = k8s.CoreV1Api(api)
        (work / "logs").mkdir()
        print(f"the service's logs: {work / 'logs'}", flush=True)
        url = f"http://127.0.0.1:{port}"
        with service_processes(env, work / "logs", port):
            files = {**sample_app(node.image("base"), "first version"), ".gitea/preview.yml": "idle_after: 5s\n"}
            repo = create_repository(
                gitea,
                f"bench-{uuid.uuid4().hex[:6]}",
                work / "repo",
                webhook_url=f"{url}/webhooks/gitea",
                secret=SECRET,
                files=files,
            )
            sha = repo.commit(BRANCH, {"site/message.txt": "awake\n"}, "Sleepy")
            repo.open_pr(BRANCH)
            host, namespace, auth = preview_served(repo, sha, core, "the preview")
            app_page = f"commit {sha}\nawake\n"
            times, first_answers, failures = [], [], []
            for round_ in range(1, args.wakes + 1):
                eventually(lambda: state_of(url, namespace) == "sleeping", timeout=120, interval=0.5, what="sleep")
                eventually(lambda: not app_pods(core, namespace), timeout=60, interval=0.5, what="the pod to go")
                started = time.monotonic()
                first = visit(node, host, auth)
                first_answers.append(first.status_code if first is not None else 0)
                while True:
                    answer = visit(node, host, auth)
                    if answer is not None and answer.status_code == 200 and answer.text == app_page:
                        break
                    if time.monotonic() - started > 120:
                        raise SystemExit(f"round {round_}: the app did not answer within 120 s")
                    time.sleep(0.2)
                times.append(time.monotonic() - started)
                [pod] = app_pods(core, namespace)
                failures.append(probe_failures(core, namespace, pod.metadata.name))
                print(
                    f"wake {round_}: {times[-1]:.1f} s (first answer {first_answers[-1]};"
                    f" readiness probe failures {failures[-1]})",
                    flush=True,
                )
        api.close()
    report(
        "wake_time",
        {
            "wakes": args.wakes,
            "first_request_to_app_s": summary(times, digits=1),
            "first_answers": sorted(set(first_answers)),
            "wakes_with_a_failed_readiness_probe": sum(1 for count in failures if count),
        },
    )


if __name__ == "__main__":
    main()
