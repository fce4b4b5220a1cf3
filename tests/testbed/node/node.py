"""Start the real node beside its own control plane, and take all of it down again.

Layout (every name below is made per run and removed at the end):

    root netns   the control plane's apiserver on the host end of a veth pair,
                 port forwards to host servers that listen on loopback only
    node netns   containerd, kubelet, kube-proxy (nftables), the registry and
                 (where the kernel allows) kube-network-policies as processes;
                 the pods' bridge behind it, with CoreDNS and Traefik as pods
                 (tests/testbed/node/addons.py); no default route
    canary netns a listener in a range every preview's egress policy denies
    mount ns     private to the node's processes: overlay and volume mounts,
                 a tmpfs /run, an overlay on /var/lib, and the three kernel
                 settings the kubelet insists on, all vanish with the namespace
    cgroup       /sys/fs/cgroup/<each v1 hierarchy>/<name>: the node's daemons,
                 and the kubelet's cgroupRoot for every pod

Why a second cluster, not the real node beside the KWOK nodes: the scale tests
make thousands of namespaces and pods, which Traefik, CoreDNS and the policy
enforcer would all watch; and a KWOK test's pod must never land on a real node.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
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

from tests.testbed.kube.controlplane import ControlPlane, Process, binary, control_plane, tools_bin, wait_for
from tests.testbed.node import addons, configs, images
from tests.testbed.node.cgroups import CgroupParent
from tests.testbed.node.configs import NODE_NAME
from tests.testbed.node.forward import PortForward
from tests.testbed.node.netns import NodeNetwork
from tests.testbed.servers import die_with_parent, free_port, stop_process, until_interrupted

SERVICE_CIDR = "10.215.0.0/24"
REGISTRY_PORT = 5000
CANARY_PORT = 8080
# What the kubelet checks before it starts (protectKernelDefaults). The machine's own values
# differ and are not ours to change: the node's mount namespace shows it these instead.
KUBELET_KERNEL_SETTINGS = {"vm/overcommit_memory": "1", "kernel/panic": "10", "kernel/panic_on_oops": "1"}
# A service account for the policy enforcer, a node agent run as a process here: test-bed
# infrastructure, not the product, so it gets cluster-admin.
INFRA_ACCOUNT = ("kube-system", "testbed-node")


@dataclass
class RealNode:
    folder: Path
    network: NodeNetwork
    cgroup: CgroupParent
    plane: ControlPlane
    holder: subprocess.Popen | None = None
    canary: subprocess.Popen | None = None  # the listener in a denied range (network.canary_ip)
    processes: list[Process] = field(default_factory=list)
    forwards: list[PortForward] = field(default_factory=list)
    registry_user: str = "testbed"
    registry_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    image_refs: dict[str, str] = field(default_factory=dict)
    # NetworkPolicy is enforced (kube-network-policies runs): see _kernel_queues_packets.
    policy_enforced: bool = False

    @property
    def registry(self) -> str:
        return f"{self.network.node_ip}:{REGISTRY_PORT}"

    @property
    def ingress_url(self) -> str:
        """Traefik's web entry point, as the host reaches it (the node's port 80)."""
        return f"http://{self.network.node_ip}"

    @property
    def gateway(self) -> str:
        return addons.GATEWAY

    @property
    def canary_url(self) -> str:
        return f"http://{self.network.canary_ip}:{CANARY_PORT}/"

    def image(self, name: str) -> str:
        return self.image_refs[name]

    def expose(self, port: int) -> tuple[str, int]:
        """Make a host server on 127.0.0.1:port reachable from the node and its pods."""
        forward = PortForward((self.network.host_ip, 0), ("127.0.0.1", port))
        self.forwards.append(forward)
        return forward.address

    def publish_on_loopback(self) -> int:
        """A loopback port that leads to Traefik, for a browser that resolves *.localhost to 127.0.0.1."""
        return self.forward_to_node(80)

    def forward_to_node(self, port: int) -> int:
        """A loopback port that leads to the node's `port` (a node port, Traefik's 80)."""
        forward = PortForward(("127.0.0.1", 0), (self.network.node_ip, port))
        self.forwards.append(forward)
        return forward.address[1]

    def docker_config(self) -> dict:
        token = base64.b64encode(f"{self.registry_user}:{self.registry_password}".encode()).decode()
        return {"auths": {self.registry: {"auth": token}}}

    # -- processes inside the node ------------------------------------------------------------

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Process:
        """Run a binary in the node's network and mount namespaces and its cgroup."""
        assert self.holder is not None
        log = self.folder / "logs" / f"{name}.log"
        command = ["nsenter", f"--target={self.holder.pid}", "--mount", "--net", "--", *args]
        cgroup = self.cgroup

        def prepare() -> None:
            die_with_parent()
            cgroup.join(os.getpid())

        with open(log, "wb") as out:
            popen = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=prepare,
                env={**os.environ, "PATH": system_path(), **(env or {})},
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def run_inside(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        assert self.holder is not None
        return subprocess.run(
            ["nsenter", f"--target={self.holder.pid}", "--mount", "--net", "--", *args],
            check=check,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PATH": system_path()},
        )

    def check_alive(self) -> None:
        self.plane.check_alive()
        for process in self.processes:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} log tail ---\n{p.tail(40)}" for p in self.processes)


def system_path() -> str:
    """PATH with root's sbin folders first: `make run` from a plain login shell lacks them, and
    kube-proxy (nft), the CNI plugins (iptables) and the probes need them."""
    return f"/usr/local/sbin:/usr/sbin:/sbin:{os.environ.get('PATH', os.defpath)}"


# -- the mount namespace ----------------------------------------------------------------------


def _start_holder(node: RealNode) -> None:
    """A process that only holds the node's mount namespace (in the node's network namespace)."""
    cgroup = node.cgroup

    def prepare() -> None:
        die_with_parent()
        cgroup.join(os.getpid())

    node.holder = subprocess.Popen(
        [
            "nsenter",
            f"--net=/run/netns/{node.network.netns}",
            "--",
            "unshare",
            "--mount",
            "--propagation=private",
            "--",
            "sleep",
            "infinity",
        ],
        start_new_session=True,
        preexec_fn=prepare,
    )
    # Wait until the holder is in its own mount namespace (unshare has exec'd sleep).
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{node.holder.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt"):
        if time.monotonic() > deadline or node.holder.poll() is not None:
            raise RuntimeError("the node's mount namespace holder did not start")
        time.sleep(0.02)
    settings = node.folder / "kernel"
    settings.mkdir()
    script = [
        "set -e",
        # /run (xtables lock, NRI socket, the controllers' service-account files) lives only as
        # long as the node does.
        "mount -t tmpfs -o mode=755 node-run /run",
        # What the node writes under /var/lib (libcni's cache in /var/lib/cni) lands in our folder.
        f"mkdir -p {settings}/var-lib {settings}/var-lib-work",
        f"mount -t overlay -o lowerdir=/var/lib,upperdir={settings}/var-lib,workdir={settings}/var-lib-work"
        " node-var-lib /var/lib",
    ]
    for key, value in KUBELET_KERNEL_SETTINGS.items():
        shown = settings / key.replace("/", "-")
        shown.write_text(value + "\n")
        script.append(f"mount --bind {shown} /proc/sys/{key}")
    node.run_inside("sh", "-c", "\n".join(script))


def _start_canary(node: RealNode) -> subprocess.Popen:
    """A web server in the canary's namespace: whoever reaches it got past the egress policy."""
    page = node.folder / "canary"
    page.mkdir()
    (page / "index.html").write_text("canary\n")
    canary = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            node.network.canary_netns,
            "python3",
            "-m",
            "http.server",
            "--bind",
            node.network.canary_ip,
            "--directory",
            str(page),
            str(CANARY_PORT),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    return canary


# -- steps ------------------------------------------------------------------------------------


def _infra_token(node: RealNode) -> str:
    """A token for the node's own controllers, who read it where a pod would find it."""
    api = node.plane.api_client()
    core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
    namespace, name = INFRA_ACCOUNT
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
    )
    request = {"spec": {"audiences": [], "expirationSeconds": 2 * 24 * 3600}}
    token = core.create_namespaced_service_account_token(name, namespace, request).status.token
    api.close()
    return str(token)


def _install_account_files(node: RealNode, token: str) -> None:
    assert node.plane.ca is not None
    staging = node.folder / "serviceaccount"
    staging.mkdir()
    (staging / "token").write_text(token)
    (staging / "namespace").write_text(INFRA_ACCOUNT[0])
    shutil.copy(node.plane.ca.cert_path, staging / "ca.crt")
    target = "/run/secrets/kubernetes.io/serviceaccount"
    node.run_inside("sh", "-c", f"mkdir -p {target} && cp {staging}/* {target}/")


def _push_images(node: RealNode) -> None:
    config = node.folder / "docker"
    configs.write(config / "config.json", json.dumps(node.docker_config()))
    for name in images.IMAGES:
        layout = images.layout_path(tools_bin().parent, name)
        if not (layout / "index.json").exists():
            raise FileNotFoundError(f"{layout} is missing: run tests/tools/build.sh (or `make tools`) first")
        ref = f"{node.registry}/testbed/{name}:{layout.name.rsplit('-', 1)[1]}"
        subprocess.run(
            [binary("crane"), "push", "--insecure", str(layout), ref],
            check=True,
            capture_output=True,
            timeout=300,
            env={**os.environ, "DOCKER_CONFIG": str(config)},
        )
        node.image_refs[name] = ref


def _kernel_queues_packets(node: RealNode) -> bool:
    """kube-network-policies hands packets to itself with nftables' `queue` statement; a kernel
    built without CONFIG_NFT_QUEUE (this machine's) refuses that rule, and then nothing enforces
    NetworkPolicy here. Tried in the node's own namespace, with a table removed at once."""
    probe = node.run_inside(
        "sh",
        "-c",
        "nft add table inet testbed-probe && nft add chain inet testbed-probe forward"
        " '{ type filter hook forward priority 0; }' && nft add rule inet testbed-probe forward queue num 1 bypass;"
        " status=$?; nft delete table inet testbed-probe; exit $status",
        check=False,
    )
    return probe.returncode == 0


def _node_ready(node: RealNode) -> bool:
    api = node.plane.api_client()
    try:
        found = k8s.CoreV1Api(api).read_node(NODE_NAME)
        return any(c.type == "Ready" and c.status == "True" for c in found.status.conditions or [])
    finally:
        api.close()


def _apply(node: RealNode, objects: list[dict]) -> None:
    node.plane.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(objects))


def _available(node: RealNode, namespace: str, name: str) -> bool:
    api = node.plane.api_client()
    try:
        status = k8s.AppsV1Api(api).read_namespaced_deployment_status(name, namespace).status
        return bool(status.available_replicas)
    finally:
        api.close()


def _install_crds(node: RealNode) -> None:
    crds = tools_bin().parent / "crds"
    for name in sorted(os.listdir(crds)):
        if name.startswith("gateway.networking.k8s.io_") or name == "kubernetes-crd-definition-v1.yml":
            node.plane.kubectl("apply", "--server-side", "-f", str(crds / name))


@contextlib.contextmanager
def real_node(timeout: float = 180.0) -> Iterator[RealNode]:
    """Start the node and its cluster; yield once the node is Ready; remove everything on exit."""
    folder = Path(tempfile.mkdtemp(prefix="preview-node-"))
    (folder / "logs").mkdir()
    network = NodeNetwork.create()
    cgroup = CgroupParent(network.netns)
    with contextlib.ExitStack() as stack:
        stack.callback(_remove, folder, network, cgroup)
        cgroup.create()
        plane = stack.enter_context(control_plane(nodes=0, address=network.host_ip, service_cidr=SERVICE_CIDR))
        node = RealNode(folder=folder, network=network, cgroup=cgroup, plane=plane)
        stack.callback(_stop, node)
        try:
            _start_holder(node)
            node.canary = _start_canary(node)
            _install_account_files(node, _infra_token(node))
            in_cluster = {"KUBERNETES_SERVICE_HOST": network.host_ip, "KUBERNETES_SERVICE_PORT": str(plane.api_port)}
            node.start("registry", [binary("registry"), "serve", str(configs.registry(node))])
            wait_for("registry", lambda: _answers(f"http://{node.registry}/v2/"), node.check_alive, 30)
            _push_images(node)
            node.start("containerd", [binary("containerd"), f"--config={configs.containerd(node)}"])
            kubelet_kubeconfig = configs.kubeconfig(node, "kubelet", f"system:node:{NODE_NAME}", "system:masters")
            node.start(
                "kubelet",
                [
                    binary("kubelet"),
                    f"--config={configs.kubelet(node)}",
                    f"--kubeconfig={kubelet_kubeconfig}",
                    f"--root-dir={folder / 'kubelet' / 'root'}",
                    f"--cert-dir={folder / 'kubelet' / 'pki'}",
                    f"--hostname-override={NODE_NAME}",
                    f"--node-ip={network.node_ip}",
                    "--v=1",
                ],
            )
            proxy_kubeconfig = configs.kubeconfig(node, "kube-proxy", "system:kube-proxy", None)
            node.start("kube-proxy", [binary("kube-proxy"), f"--config={configs.kube_proxy(node, proxy_kubeconfig)}"])
            node.policy_enforced = _kernel_queues_packets(node)
            if node.policy_enforced:
                node.start(
                    "kube-network-policies",
                    [
                        binary("kube-network-policies"),
                        f"--hostname-override={NODE_NAME}",
                        f"--metrics-bind-address=127.0.0.1:{free_port()}",
                    ],
                    env=in_cluster,
                )
            wait_for("node Ready", lambda: _node_ready(node), node.check_alive, timeout)
            _install_crds(node)
            _apply(node, addons.coredns(node.image("coredns")) + addons.traefik(node.image("traefik"), network.node_ip))
            _apply(node, addons.local_volumes(str(folder), count=8))
            for namespace, name in (("kube-system", "coredns"), (addons.TRAEFIK_NAMESPACE, "traefik")):
                wait_for(
                    f"{name} available", lambda n=namespace, d=name: _available(node, n, d), node.check_alive, timeout
                )
        except BaseException:
            sys.stderr.write(node.logs() + "\n")
            raise
        yield node


def _answers(url: str) -> bool:
    return requests.get(url, timeout=2).status_code in (200, 401)


def _stop(node: RealNode) -> None:
    for forward in node.forwards:
        forward.close()
    if node.canary is not None:
        stop_process(node.canary)
    for process in reversed(node.processes):
        stop_process(process.popen, timeout=15)
    node.processes.clear()
    if node.holder is not None:
        stop_process(node.holder)


def _remove(folder: Path, network: NodeNetwork, cgroup: CgroupParent) -> None:
    cgroup.remove()  # the pods' processes (shims, containers) and anything else still inside
    network.remove()
    subprocess.run(["rm", "-rf", "--one-file-system", str(folder)], check=False)


def leftovers(folder: Path, network: NodeNetwork, cgroup: CgroupParent) -> list[str]:
    """Whatever of a node is still on the machine: mounts, namespaces, cgroups, processes, files."""
    found = network.leftovers() + cgroup.leftovers()
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line.split()[4]}" for line in mounts.splitlines() if str(folder) in line]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(folder) in command or network.netns in command:
                found.append(f"process {pid}: {command[:120]}")
    if folder.exists():
        found.append(f"folder {folder}")
    return found


def main() -> None:
    """Run the real node and its cluster in the foreground until interrupted (`make node`)."""
    started = time.monotonic()
    with real_node() as node:
        print(f"real node ready in {time.monotonic() - started:.1f} s", flush=True)
        print(f"export KUBECONFIG={node.plane.kubeconfig}", flush=True)
        print(f"kubectl: {binary('kubectl')}", flush=True)
        print(f"registry: http://{node.registry} (user {node.registry_user}; config in {node.folder / 'docker'})")
        print(f"Traefik: {node.ingress_url} (Gateway {node.gateway}); a pod's shell: kubectl exec", flush=True)
        print(f"the node's namespaces: ip netns exec {node.network.netns} ...; logs in {node.folder / 'logs'}")
        print("Ctrl-C stops everything and removes it", flush=True)
        until_interrupted(node.check_alive)


if __name__ == "__main__":
    main()
