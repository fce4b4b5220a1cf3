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
from urllib.parse import urlsplit, urlunsplit

import yaml

from tests.testbed.kube.controlplane import binary
from tests.testbed.node.node import RealNode
from tests.testbed.node.service import DOMAIN, prepare_builds, service_env
from tests.testbed.service_processes import ROOT

CHART = ROOT / "charts" / "gitea-previews"
RELEASE = "previews"
NAMESPACE = "previews-system"
BUILD_NAMESPACE = "chart-builds"  # not the host-run service's preview-builds: the chart owns this one
SECRET = "gitea-previews"
COMPONENTS = ("web", "worker", "scheduler", "mcp")
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
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


def _exposed(node: RealNode, url: str) -> str:
    """`url` of a server on 127.0.0.1, rewritten to the address the node reaches it at."""
    parts = urlsplit(url)
    host, port = node.expose(parts.port or 0)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials + '@' if credentials else ''}{host}:{port}"))


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

    def kubectl_as(self, component: str, *args: str) -> subprocess.CompletedProcess:
        """kubectl with the ServiceAccount token a running pod of `component` holds (read from
        the pod, kept in a kubeconfig file: never on a command line that an error would print)."""
        token = self.exec(component, "python", "-c", f"print(open('{SERVICE_ACCOUNT_TOKEN}').read())").stdout
        plane = self.node.plane
        assert plane.ca is not None
        kubeconfig = self.folder / f"{component}-token.kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "node",
                            "cluster": {"server": plane.server, "certificate-authority": str(plane.ca.cert_path)},
                        }
                    ],
                    "users": [{"name": component, "user": {"token": token.strip()}}],
                    "contexts": [{"name": "node", "context": {"cluster": "node", "user": component}}],
                    "current-context": "node",
                }
            )
        )
        kubeconfig.chmod(0o600)
        return subprocess.run(
            [binary("kubectl"), f"--kubeconfig={kubeconfig}", *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )

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
    gitea_host, gitea_forward = node.expose(gitea_port)
    node_port = random.randint(30000, 32700)
    public_port = node.forward_to_node(node_port)
    node.plane.kubectl("create", "namespace", NAMESPACE)
    # On stdin, not the command line: a failed kubectl's error names its arguments.
    settings_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": NAMESPACE},
        "stringData": {
            "DATABASE_URL": _exposed(node, database_url),
            "REDIS_URL": _exposed(node, redis_url),
            "GITEA_TOKEN": gitea_token,
            "GITEA_WEBHOOK_SECRET": webhook_secret,
            "API_TOKENS": api_token,
        },
    }
    node.plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(settings_secret))
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
