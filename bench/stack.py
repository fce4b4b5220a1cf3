"""The test bed for the end-to-end benchmarks, started by the tests' own helpers.

Redis, PostgreSQL, the control plane (KWOK as kubelet), Gitea, and the Procfile's
web, workers and scheduler as separate processes; plus what the benchmarks share:
figures (percentiles), a repository whose preview file names a ready-made image
(so no build runs unless asked), and a client for the control plane.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from tests.testbed import servers
from tests.testbed.gitea_repo import APP_FILES, Repo, create_repository
from tests.testbed.gitea_server import BOT, GiteaServer, gitea_server
from tests.testbed.kube.controlplane import ControlPlane, binary, control_plane
from tests.testbed.kube.waiting import eventually
from tests.testbed.node.node import RealNode, real_node
from tests.testbed.node.service import prepare_builds
from tests.testbed.service_processes import service_processes

SECRET = "bench-webhook-secret-" + uuid.uuid4().hex[:8]
API_TOKEN = "bench-admin-" + uuid.uuid4().hex
IMAGE = "registry.bench.test:5000/app:1"  # under PREVIEW_REGISTRY: a preview file may name it


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    folder: Path
    gitea: GiteaServer
    plane: ControlPlane
    processes: dict[str, Any]
    api: k8s.ApiClient

    def repository(self, name: str, preview_file: str, webhook_url: str | None = None) -> Repo:
        """A repository whose webhook goes to the service (or `webhook_url`), with `preview_file`
        as its `.gitea/preview.yml`."""
        repo = create_repository(
            self.gitea,
            f"{name}-{uuid.uuid4().hex[:4]}",
            self.folder / f"work-{name}-{uuid.uuid4().hex[:4]}",
            webhook_url=webhook_url or f"{self.url}/webhooks/gitea",
            secret=SECRET,
        )
        # As the README asks of an operator: the bot administers the repositories it previews,
        # so the trust check may ask Gitea who can write.
        self.gitea.api("PUT", f"/repos/{repo.full_name}/collaborators/{BOT}", json={"permission": "admin"})
        repo.commit("main", {**APP_FILES, ".gitea/preview.yml": preview_file}, "Preview file")
        return repo

    def namespace(self, name: str) -> k8s.V1Namespace | None:
        try:
            return k8s.CoreV1Api(self.api).read_namespace(name)
        except k8s.ApiException as error:
            if error.status == 404:
                return None
            raise

    def preview(self, preview_id: int) -> dict:
        answer = self.session().get(f"{self.url}/api/previews/{preview_id}", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def session(self) -> Any:
        import requests

        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {API_TOKEN}"
        return session


@contextlib.contextmanager
def preview_stack(workers: int = 1, **env: str) -> Iterator[Stack]:
    """Everything up, the service's processes started with `workers` workers and `env` on top."""
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(servers.redis_server())
        postgres = stack.enter_context(servers.postgres_server())
        plane = stack.enter_context(control_plane())
        gitea = stack.enter_context(gitea_server())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="preview-bench-")))
        port = servers.free_port()
        full_env = {
            "DATABASE_URL": postgres.create_database(f"bench_{uuid.uuid4().hex[:8]}"),
            "REDIS_URL": redis.url,
            "GITEA_URL": gitea.url,
            "GITEA_TOKEN": gitea.bot_token,
            "GITEA_WEBHOOK_SECRET": SECRET,
            "API_TOKENS": API_TOKEN,
            "KUBECONFIG": str(plane.kubeconfig),
            "PREVIEW_REGISTRY": "registry.bench.test:5000",
            "REGISTRY_SHARED_FALLBACK": "true",
            "METRICS_OPEN": "true",
            "PREVIEW_DOMAIN": "preview.bench.test",
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "WEB_CONCURRENCY": "2",
            "LOG_LEVEL": "INFO",
            **env,
        }
        processes = stack.enter_context(service_processes(full_env, folder, port, workers=workers))
        api = k8s.ApiClient(plane.client_configuration())
        stack.callback(api.close)
        try:
            yield Stack(f"http://127.0.0.1:{port}", full_env, folder, gitea, plane, processes, api)
        finally:
            if os.environ.get("BENCH_KEEP_LOGS"):  # a folder for the processes' logs, also when a run fails
                shutil.copytree(
                    folder, os.environ["BENCH_KEEP_LOGS"], dirs_exist_ok=True, ignore=shutil.ignore_patterns("work-*")
                )


# Namespaced kinds the pipeline applies for a preview with basic auth and no database.
KINDS = "resourcequota,limitrange,networkpolicy,rolebinding,secret,deployment,service,ingress"
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink")


@contextlib.contextmanager
def node_stack() -> Iterator[tuple[servers.RedisServer, servers.PostgresServer, GiteaServer, RealNode]]:
    """Redis, PostgreSQL, Gitea and the real node, with the build namespace's credentials made
    (the operator's part): what the benchmarks on the real node share."""
    with (
        servers.redis_server() as redis,
        servers.postgres_server() as postgres,
        gitea_server() as gitea,
        real_node() as node,
    ):
        prepare_builds(node, BOT, gitea.bot_token)
        yield redis, postgres, gitea, node


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def objects_of(kubeconfig: Path, namespace: str, kinds: str = KINDS) -> list[dict]:
    """The preview's objects as applied (our labels, no server fields), namespace first."""
    kubectl = [binary("kubectl"), "--kubeconfig", str(kubeconfig)]
    found = [
        json.loads(
            subprocess.run(
                [*kubectl, "get", "namespace", namespace, "-o", "json"], check=True, capture_output=True, text=True
            ).stdout
        )
    ]
    listed = subprocess.run(
        [*kubectl, "get", kinds, "-n", namespace, "-o", "json"], check=True, capture_output=True, text=True
    )
    found += [
        item
        for item in json.loads(listed.stdout)["items"]
        if "app.kubernetes.io/managed-by" in item["metadata"].get("labels", {})
    ]
    for item in found:
        item.pop("status", None)
        for field in SERVER_FIELDS:
            item["metadata"].pop(field, None)
        item["metadata"].get("annotations", {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
        if item["kind"] == "Service":  # allocated by the API server, and taken by the original
            for field in ("clusterIP", "clusterIPs"):
                item["spec"].pop(field, None)
    return found


def kubectl_baseline(
    kubeconfig: Path, template: list[dict], namespace: str, app: str, folder: Path, number: int, wait: bool = False
) -> float:
    """Seconds for kubectl to apply the same objects in a fresh namespace and see the rollout
    through. The namespace is deleted after (untimed; waited for with `wait`)."""
    renamed = f"bench-baseline-{number}"
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": template}).replace(f'"{namespace}"', f'"{renamed}"')
    path = folder / f"baseline-{number}.json"
    path.write_text(text)
    kubectl = [binary("kubectl"), "--kubeconfig", str(kubeconfig)]
    started = time.perf_counter()
    for command in (["apply", "-f", str(path)], ["rollout", "status", f"deployment/{app}", "-n", renamed]):
        done = subprocess.run([*kubectl, *command, "--timeout=180s"], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"kubectl {command[0]} failed: {done.stderr.strip()}")
    elapsed = time.perf_counter() - started
    delete = [*kubectl, "delete", "namespace", renamed, f"--wait={str(wait).lower()}", "--timeout=180s"]
    subprocess.run(delete, check=True, capture_output=True)
    return elapsed


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def summary(values: list[float], unit_scale: float = 1.0, digits: int = 2) -> dict[str, float]:
    """p50, p95 and max of `values` (times `unit_scale`)."""
    return {
        "p50": round(statistics.median(values) * unit_scale, digits),
        "p95": round(percentile(values, 0.95) * unit_scale, digits),
        "max": round(max(values) * unit_scale, digits),
    }


def report(name: str, figures: dict) -> None:
    """One JSON line per benchmark: what the README's table is made from."""
    print(json.dumps({"benchmark": name, **figures}), flush=True)


def preview_served(repo: Any, sha: str, core: Any, what: str) -> tuple[str, str, tuple[str, str]]:
    """Once Gitea shows `sha`'s preview status success: its host, its namespace and its
    basic-auth credentials (read from its Secret)."""
    status = eventually(
        lambda: (found := repo.latest_status(sha)) and found["status"] == "success" and found,
        timeout=600,
        interval=1,
        what=what,
    )
    host = status["target_url"].split("://", 1)[1].split("/", 1)[0]
    namespace = "preview-" + host.split(".", 1)[0]
    data = core.read_namespaced_secret("preview-basic-auth", namespace).data
    return host, namespace, (base64.b64decode(data["username"]).decode(), base64.b64decode(data["password"]).decode())
