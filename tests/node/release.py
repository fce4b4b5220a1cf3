"""The chart installed on the real node, as an operator would install it (the README's
"Install on Kubernetes"): a namespace and the settings Secret first, then `helm install`
with a values file, then the build namespace's credentials.

The service's dependencies stay on the host (the session's PostgreSQL, Redis and Gitea)
and are reached through port forwards on the node's side of its link; Gitea reaches the
web through a loopback forward to the web Service's node port.
"""

from __future__ import annotations

import random
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.kube.controlplane import binary
from tests.node.node import RealNode
from tests.node.service import DOMAIN, prepare_builds, service_env
from tests.service_processes import ROOT

CHART = ROOT / "charts" / "gitea-previews"
RELEASE = "previews"
NAMESPACE = "previews-system"
BUILD_NAMESPACE = "chart-builds"  # not the host-run service's preview-builds: the chart owns this one
SECRET = "gitea-previews"
COMPONENTS = ("web", "worker", "scheduler", "mcp")
# The settings the test bed's own previews use that name images or places on the node.
NODE_SETTINGS = (
    "PREVIEW_REGISTRY",
    "PREVIEW_REGISTRY_INSECURE",
    "REGISTRY_SHARED_FALLBACK",
    "SOURCE_IMAGE",
    "BUILDER_IMAGE",
    "BUILD_EGRESS_ALLOWED_CIDRS",
    "PREVIEW_ROUTING",
    "PREVIEW_GATEWAY",
    "INGRESS_CONTROLLER_NAMESPACE",
)


def _rehosted(url: str, host: str, port: int) -> str:
    """`url` (of a server on 127.0.0.1) with the address the node reaches it at."""
    scheme, rest = url.split("://", 1)
    credentials, _, location = rest.rpartition("@")
    path = location.split("/", 1)[1] if "/" in location else ""
    return f"{scheme}://{credentials + '@' if credentials else ''}{host}:{port}/{path}"


@dataclass
class Release:
    node: RealNode
    folder: Path
    node_port: int
    public_url: str
    values: dict = field(default_factory=dict)

    @property
    def values_file(self) -> Path:
        return self.folder / "values.yaml"

    def helm(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(
            [binary("helm"), "--kubeconfig", str(self.node.plane.kubeconfig), "--namespace", NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        return self.node.plane.kubectl("-n", NAMESPACE, *args, check=check, input=input)

    def _deploy(self, verb: str, image: str) -> float:
        """`helm install` or `helm upgrade` to `image`, waiting for every pod's readiness;
        returns how long that took."""
        repository, digest = image.split("@")
        self.values["image"] = {"repository": repository, "digest": digest, "pullPolicy": "IfNotPresent"}
        self.values_file.write_text(yaml.safe_dump(self.values))
        started = time.monotonic()
        done = self.helm(verb, RELEASE, str(CHART), "--values", str(self.values_file), "--wait", "--timeout", "10m")
        took = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(f"helm {verb}: {done.stderr}\n{self.explain()}")
        return took

    def install(self, image: str) -> float:
        return self._deploy("install", image)

    def upgrade(self, image: str) -> float:
        return self._deploy("upgrade", image)

    def uninstall(self) -> None:
        done = self.helm("uninstall", RELEASE, "--wait", "--timeout", "5m")
        if done.returncode != 0:
            raise RuntimeError(f"helm uninstall: {done.stderr}")

    def exec(self, component: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run `command` in a pod of `component` (no shell: the image needs none)."""
        return self.kubectl("exec", f"deployment/{RELEASE}-{component}", "--", *command, check=check)

    def explain(self) -> str:
        """What the release's pods and events say, for a failure message."""
        pods = self.kubectl("get", "pods,jobs", "-o", "wide", check=False).stdout
        events = self.kubectl("get", "events", "--sort-by=.lastTimestamp", check=False).stdout[-4000:]
        logs = [self.kubectl("logs", f"deployment/{RELEASE}-{c}", "--tail=30", check=False).stdout for c in COMPONENTS]
        return "\n".join([pods, events, *logs])


def prepare_release(
    node: RealNode,
    folder: Path,
    *,
    database_url: str,
    redis_url: str,
    gitea_port: int,
    gitea_token: str,
    webhook_secret: str,
    api_token: str,
    queue: str,
) -> Release:
    """The operator's part before `helm install`: the namespace, the settings Secret (the
    only place secrets go), and a values file; forwards for the host's servers."""
    folder.mkdir(parents=True, exist_ok=True)
    database = _rehosted(database_url, *node.expose(int(database_url.split(":")[2].split("/")[0])))
    redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    redis = _rehosted(redis_url, *node.expose(redis_port))
    gitea_host, gitea_forward = node.expose(gitea_port)
    node_port = random.randint(30000, 32700)
    public_port = node.forward_to_node(node_port)
    node.plane.kubectl("create", "namespace", NAMESPACE)
    node.plane.kubectl(
        "-n", NAMESPACE, "create", "secret", "generic", SECRET,
        f"--from-literal=DATABASE_URL={database}",
        f"--from-literal=REDIS_URL={redis}",
        f"--from-literal=GITEA_TOKEN={gitea_token}",
        f"--from-literal=GITEA_WEBHOOK_SECRET={webhook_secret}",
        f"--from-literal=API_TOKENS={api_token}",
    )  # fmt: skip
    settings = service_env(node)
    public_url = f"http://127.0.0.1:{public_port}"
    env = {name: settings[name] for name in NODE_SETTINGS}
    env.update(
        {
            "GITEA_URL": f"http://{gitea_host}:{gitea_forward}",
            "PUBLIC_URL": public_url,
            "PREVIEW_DOMAIN": DOMAIN,
            "PREVIEW_QUEUE": queue,
        }
    )
    values = {
        "existingSecret": SECRET,
        "buildNamespace": BUILD_NAMESPACE,
        "env": env,
        "service": {"type": "NodePort", "port": 80, "nodePort": node_port},
        # One of each on a two-core machine; the upgrade still rolls (maxSurge).
        "web": {"replicas": 1, "processes": 1},
        "worker": {"replicas": 1},
        "mcp": {"replicas": 1},
    }
    return Release(node, folder, node_port, public_url, values)


def grant_builds(release: Release, git_user: str, git_token: str) -> None:
    """After the install (the chart owns the build namespace): the registry and git
    credentials the operator puts there."""
    prepare_builds(release.node, git_user, git_token, namespace=BUILD_NAMESPACE)
