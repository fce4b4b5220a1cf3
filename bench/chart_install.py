"""Time from `helm install` to every pod of the release ready, on the real node, beside a
plain Deployment of the same image (`kubectl apply` + `rollout status`) in the same run.

The service's image is built once first (our kaniko build Job, not timed) and pulled
once by an untimed baseline, so both sides start from a node that holds the image. The
install includes what an operator's does: the migration Job, then web, worker, scheduler
and MCP ready through their own probes. Each run uninstalls and removes the namespaces.

    .venv/bin/python -m bench.chart_install [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml

from bench.stack import node_stack, report
from tests.testbed.node import release as chart
from tests.testbed.node.node import RealNode
from tests.testbed.node.service_image import service_image_builder
from tests.testbed.node.wheelhouse import served, wheelhouse

BASELINE_NAMESPACE = "bench-baseline"


def baseline(node: RealNode, image: str) -> float:
    """The same image as one Deployment that only serves a port, ready by a TCP probe."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "baseline", "namespace": BASELINE_NAMESPACE},
        "spec": {
            "selector": {"matchLabels": {"app": "baseline"}},
            "template": {
                "metadata": {"labels": {"app": "baseline"}},
                "spec": {
                    "containers": [
                        {
                            "name": "baseline",
                            "image": image,
                            "command": ["python", "-m", "http.server", "8000"],
                            "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 5},
                        }
                    ]
                },
            },
        },
    }
    node.plane.kubectl("create", "namespace", BASELINE_NAMESPACE)
    started = time.monotonic()
    node.plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(deployment))
    node.plane.kubectl("-n", BASELINE_NAMESPACE, "rollout", "status", "deployment/baseline", "--timeout=5m")
    took = time.monotonic() - started
    node.plane.kubectl("delete", "namespace", BASELINE_NAMESPACE, "--wait=true")
    return took


def install_once(node, folder: Path, postgres, redis, gitea, image: str) -> float:
    release = chart.prepare_release(
        node,
        folder,
        database_url=postgres.create_database(f"bench_{uuid.uuid4().hex[:8]}"),
        redis_url=redis.url,
        gitea_port=gitea.port,
        gitea_token=gitea.bot_token,
        webhook_secret=uuid.uuid4().hex,
        api_token=uuid.uuid4().hex,
        queue=f"bench-{uuid.uuid4().hex[:8]}",
    )
    started = time.time()
    took = release.install(image)
    print(f"  {ready_after(release, started)}", flush=True)
    release.uninstall()
    node.plane.kubectl("delete", "namespace", chart.NAMESPACE, "--wait=true")
    return took


def ready_after(release: chart.Release, started: float) -> str:
    """When each process's pod was created and became ready, counted from `helm install`'s start
    (the migration hook runs before any is created)."""
    pods = json.loads(release.kubectl("get", "pods", "-o", "json").stdout)["items"]
    said = []
    for pod in sorted(pods, key=lambda pod: pod["metadata"]["labels"]["app.kubernetes.io/component"]):
        created = _seconds(pod["metadata"]["creationTimestamp"]) - started
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        component = pod["metadata"]["labels"]["app.kubernetes.io/component"]
        said.append(
            f"{component} created +{created:.0f} s, ready +{_seconds(ready['lastTransitionTime']) - started:.0f} s"
        )
    return "; ".join(said)


def _seconds(timestamp: str) -> float:
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-chart-"))
    with node_stack() as (redis, postgres, gitea, node):
        with served(wheelhouse()) as wheels_port:
            host, port = node.expose(wheels_port)
            builder = service_image_builder(node, gitea, work / "source", f"http://{host}:{port}/")
            started = time.monotonic()
            image = builder.build(builder.repo.git("rev-parse", "HEAD"))
            print(f"the service image built by our kaniko Job in {time.monotonic() - started:.0f} s", flush=True)
        baseline(node, image)  # pulls the image: neither side below pays for the pull
        plain, installs = [], []
        for run in range(args.runs):
            plain.append(baseline(node, image))
            installs.append(install_once(node, work / f"release-{run}", postgres, redis, gitea, image))
            print(f"run {run + 1}: helm install to ready {installs[-1]:.1f} s, plain Deployment {plain[-1]:.1f} s")
    install_median, plain_median = statistics.median(installs), statistics.median(plain)
    report(
        "chart_install",
        {
            "helm_install_to_ready_seconds_median": round(install_median, 1),
            "plain_deployment_seconds_median": round(plain_median, 1),
            "ratio": round(install_median / plain_median, 2),
        },
    )


if __name__ == "__main__":
    main()
