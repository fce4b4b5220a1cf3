"""A real Kubernetes control plane on loopback: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, and KWOK playing the kubelet.

Binaries come from tests/tools/build.sh. Every process gets free ports and a
temporary folder, so two runs never collide, and every process started here is
stopped on exit, also when the start fails half-way.

`python -m tests.testbed.kube.controlplane` runs one in the foreground for a person.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.testbed.kube import pki
from tests.testbed.servers import die_with_parent, free_port, stop_process, until_interrupted, wait_for_port

KWOK_CONFIG = Path(__file__).with_name("kwok.yaml")
NODE_NAMES = ("kwok-node-0", "kwok-node-1")
SERVICE_CIDR = "10.96.0.0/16"
# Admission plugins the product relies on, named explicitly so a default change upstream cannot drop one.
ADMISSION_PLUGINS = "NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,ResourceQuota,DefaultTolerationSeconds"
# Label on a pod (template) that makes KWOK simulate a failure; see kwok.yaml.
BEHAVIOUR_LABEL = "testbed.preview/behaviour"


def tools_bin() -> Path:
    cache = os.environ.get("PREVIEW_TOOLS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "preview-tools"
    )
    return Path(cache) / "bin"


def binary(name: str) -> str:
    path = tools_bin() / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run tests/tools/build.sh (or `make tools`) first")
    return str(path)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ControlPlane:
    folder: Path
    api_port: int
    kubeconfig: Path
    processes: list[Process] = field(default_factory=list)
    etcd_url: str = ""
    address: str = "127.0.0.1"  # where the apiserver listens: the real node's cluster uses its link
    ca: pki.CertificateAuthority | None = None

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.api_port}"

    def compact_etcd(self) -> int:
        """Compact etcd's history up to now (what it does every few minutes in a real cluster):
        a watch from an older version then gets 410 Gone. Returns the revision."""
        revision = int(
            requests.post(f"{self.etcd_url}/v3/kv/range", json={"key": "AA=="}, timeout=5).json()["header"]["revision"]
        )
        requests.post(
            f"{self.etcd_url}/v3/kv/compaction", json={"revision": revision, "physical": True}, timeout=30
        ).raise_for_status()
        return revision

    def client_configuration(self) -> k8s.Configuration:
        configuration = k8s.Configuration()
        k8s_config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        return configuration

    def api_client(self) -> k8s.ApiClient:
        return k8s.ApiClient(self.client_configuration())

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [binary("kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            check=check,
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )

    def start(self, name: str, args: list[str]) -> Process:
        log = self.folder / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [binary(name), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def check_alive(self) -> None:
        for process in self.processes:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process.popen)
        self.processes.clear()


def write_kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "preview-test", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "preview-test", "context": {"cluster": "preview-test", "user": user}}],
        "current-context": "preview-test",
    }
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


def wait_for(description: str, check, check_alive, timeout: float) -> None:
    """Until `check()` is truthy; `check_alive()` raises when a process it waits on has died."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        check_alive()
        try:
            if check():
                return
        except Exception as error:  # the server is still coming up
            last_error = error
        time.sleep(0.2)
    raise TimeoutError(f"{description} not reached within {timeout} s (last error: {last_error})")


def _start_etcd(plane: ControlPlane) -> str:
    client_port, peer_port = free_port(), free_port()
    peer = f"http://127.0.0.1:{peer_port}"
    process = plane.start(
        "etcd",
        [
            "--name=default",
            f"--data-dir={plane.folder / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{client_port}",
            f"--advertise-client-urls=http://127.0.0.1:{client_port}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
    )
    wait_for_port(client_port, process.popen)
    return f"http://127.0.0.1:{client_port}"


def _start_apiserver(
    plane: ControlPlane,
    etcd_url: str,
    ca: pki.CertificateAuthority,
    sa_private: Path,
    sa_public: Path,
    service_cidr: str,
) -> None:
    service_ip = str(next(ipaddress.ip_network(service_cidr).hosts()))
    serving_cert, serving_key = ca.issue(
        "apiserver",
        "kube-apiserver",
        server_names=[
            *sorted(
                {plane.address, "127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}
            ),
            service_ip,
        ],
    )
    on_loopback = plane.address == "127.0.0.1"
    # A real kubelet (not KWOK) serves logs and exec: reach it by its address, with a client
    # certificate its x509 authentication accepts.
    kubelet_client = ca.issue(
        "apiserver-kubelet-client", "kube-apiserver-kubelet-client", organization="system:masters"
    )
    to_kubelets = [
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={kubelet_client[0]}",
        f"--kubelet-client-key={kubelet_client[1]}",
    ]
    plane.start(
        "kube-apiserver",
        [
            f"--etcd-servers={etcd_url}",
            f"--bind-address={plane.address}",
            f"--advertise-address={plane.address}",
            f"--secure-port={plane.api_port}",
            f"--cert-dir={plane.folder / 'apiserver-certs'}",
            f"--tls-cert-file={serving_cert}",
            f"--tls-private-key-file={serving_key}",
            f"--client-ca-file={ca.cert_path}",
            f"--service-account-key-file={sa_public}",
            f"--service-account-signing-key-file={sa_private}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--authorization-mode=RBAC",
            # ConfigMaps (which the service never watches) are watched from etcd itself, so a test
            # can see a watch from a compacted version answered 410 Gone, as after a restart.
            "--watch-cache-sizes=configmaps#0",
            f"--enable-admission-plugins={ADMISSION_PLUGINS}",
            f"--service-cluster-ip-range={service_cidr}",
            # Loopback is not a valid endpoint address: do not publish the `kubernetes` service endpoints.
            *(["--endpoint-reconciler-type=none"] if on_loopback else to_kubelets),
            "--allow-privileged=true",
            "--profiling=false",
            "--v=0",
        ],
    )


def _register_nodes(api: k8s.ApiClient, names: tuple[str, ...]) -> None:
    core = k8s.CoreV1Api(api)
    for name in names:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/hostname": name},
            },
            "status": {
                "allocatable": {"cpu": "1000", "memory": "4Ti", "ephemeral-storage": "100Ti", "pods": "10000"},
                "capacity": {"cpu": "1000", "memory": "4Ti", "ephemeral-storage": "100Ti", "pods": "10000"},
            },
        }
        core.create_node(node)


def _nodes_ready(api: k8s.ApiClient, count: int) -> bool:
    nodes = k8s.CoreV1Api(api).list_node().items
    ready = [n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))]
    return len(ready) >= count


def _default_service_account(api: k8s.ApiClient) -> bool:
    k8s.CoreV1Api(api).read_namespaced_service_account("default", "default")
    return True


def explain_failure(plane: ControlPlane, error: BaseException, ready: bool) -> None:
    """On stderr: first the one line that says what failed, then the components' log tails for the why.

    An error raised by the caller once the plane was ready is not the plane's: say nothing
    unless a component has died too.
    """
    dead = [p for p in plane.processes if p.popen.poll() is not None]
    if ready and not dead:
        return
    if dead:
        line = ", ".join(f"{p.name} exited with {p.popen.returncode}" for p in dead)
    else:
        line = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
    sys.stderr.write(f"control plane failed: {line}\n")
    for process in plane.processes:
        sys.stderr.write(f"--- {process.name} log tail ---\n{process.tail()}\n")


@contextlib.contextmanager
def control_plane(
    nodes: int = 1, timeout: float = 180.0, address: str = "127.0.0.1", service_cidr: str = SERVICE_CIDR
) -> Iterator[ControlPlane]:
    """Start a control plane, yield it once usable, stop everything on exit.

    `nodes`: how many KWOK nodes (0: none, and no KWOK: the real node's cluster).
    """
    folder = Path(tempfile.mkdtemp(prefix="preview-kube-"))
    plane = ControlPlane(folder=folder, api_port=free_port(), kubeconfig=folder / "admin.kubeconfig", address=address)
    ready = False
    try:
        ca = plane.ca = pki.CertificateAuthority(folder)
        sa_private, sa_public = pki.service_account_keys(folder)
        etcd_url = plane.etcd_url = _start_etcd(plane)
        _start_apiserver(plane, etcd_url, ca, sa_private, sa_public, service_cidr)

        admin_cert, admin_key = ca.issue("admin", "preview-test-admin", organization="system:masters")
        write_kubeconfig(plane.kubeconfig, plane.server, ca.cert_path, admin_cert, admin_key, "admin")
        # verify= on the call itself: a session's verify loses to REQUESTS_CA_BUNDLE from the environment.
        wait_for(
            "apiserver /readyz",
            lambda: (
                requests.get(
                    f"{plane.server}/readyz",
                    verify=str(ca.cert_path),
                    cert=(str(admin_cert), str(admin_key)),
                    timeout=2,
                ).ok
            ),
            plane.check_alive,
            timeout,
        )

        components = {
            "kube-controller-manager": ("system:kube-controller-manager", None),
            "kube-scheduler": ("system:kube-scheduler", None),
            "kwok": ("kwok", "system:masters"),
        }
        kubeconfigs = {}
        for name, (user, group) in components.items():
            cert, key = ca.issue(name, user, organization=group)
            kubeconfigs[name] = write_kubeconfig(
                folder / f"{name}.kubeconfig", plane.server, ca.cert_path, cert, key, user
            )
        plane.start(
            "kube-controller-manager",
            [
                f"--kubeconfig={kubeconfigs['kube-controller-manager']}",
                f"--authentication-kubeconfig={kubeconfigs['kube-controller-manager']}",
                f"--authorization-kubeconfig={kubeconfigs['kube-controller-manager']}",
                f"--service-account-private-key-file={sa_private}",
                f"--root-ca-file={ca.cert_path}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-cluster-ip-range={service_cidr}",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
                "--v=0",
            ],
        )
        plane.start(
            "kube-scheduler",
            [
                f"--kubeconfig={kubeconfigs['kube-scheduler']}",
                f"--authentication-kubeconfig={kubeconfigs['kube-scheduler']}",
                f"--authorization-kubeconfig={kubeconfigs['kube-scheduler']}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=0",
            ],
        )
        api = plane.api_client()
        if nodes:
            plane.start(
                "kwok",
                [
                    f"--kubeconfig={kubeconfigs['kwok']}",
                    f"--config={KWOK_CONFIG}",
                    "--server-address=127.0.0.1:" + str(free_port()),
                    "--node-ip=10.244.0.1",
                    "--cidr=10.244.0.0/16",
                ],
            )
            _register_nodes(api, NODE_NAMES[:nodes])
            wait_for("nodes Ready", lambda: _nodes_ready(api, nodes), plane.check_alive, timeout)
        wait_for("default ServiceAccount", lambda: _default_service_account(api), plane.check_alive, timeout)
        api.close()
        ready = True
        yield plane
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise  # stopped on purpose: nothing to explain
    except BaseException as error:
        explain_failure(plane, error, ready)
        raise
    finally:
        plane.stop()
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def main() -> None:
    """Run a control plane in the foreground until interrupted."""
    started = time.monotonic()
    with control_plane() as plane:
        print(f"control plane ready in {time.monotonic() - started:.1f} s", flush=True)
        print(f"export KUBECONFIG={plane.kubeconfig}", flush=True)
        print(f"kubectl: {binary('kubectl')}   (Ctrl-C stops everything)", flush=True)
        print("KWOK plays the kubelet here; `make node` starts a real node (and its own cluster)", flush=True)
        until_interrupted(plane.check_alive)


if __name__ == "__main__":
    main()
