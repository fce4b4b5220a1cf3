"""The real node's configuration files: containerd (with its registry and CNI settings), the
kubelet, kube-proxy, the registry, and the kubeconfigs of the node's own components."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import bcrypt
import yaml

from tests.testbed.kube.controlplane import tools_bin, write_kubeconfig
from tests.testbed.node import addons
from tests.testbed.node.netns import POD_CIDR
from tests.testbed.servers import free_port

if TYPE_CHECKING:
    from tests.testbed.node.node import RealNode

NODE_NAME = "preview-node"
CLUSTER_DOMAIN = "cluster.local"


def write(path: Path, content: str | dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def kubeconfig(node: RealNode, name: str, user: str, group: str | None) -> Path:
    """A kubeconfig for one of the node's components, with a client certificate of its own."""
    assert node.plane.ca is not None
    cert, key = node.plane.ca.issue(f"node-{name}", user, organization=group)
    path = node.folder / "kubeconfigs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_kubeconfig(path, node.plane.server, node.plane.ca.cert_path, cert, key, user)


def containerd(node: RealNode) -> Path:
    base = node.folder / "containerd"
    hosts = base / "certs.d" / node.registry / "hosts.toml"
    token = base64.b64encode(f"{node.registry_user}:{node.registry_password}".encode()).decode()
    # The node pulls with its own credential, as a node's credential provider would.
    write(
        hosts,
        f'server = "http://{node.registry}"\n\n'
        f'[host."http://{node.registry}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        f'  [host."http://{node.registry}".header]\n'
        f'    Authorization = ["Basic {token}"]\n',
    )
    cni = tools_bin().resolve()
    config = f"""version = 3
root = "{base / "root"}"
state = "{base / "state"}"

[grpc]
  address = "{base / "containerd.sock"}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{node.image("pause")}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "{base / "certs.d"}"

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  netns_mounts_under_state_dir = true
  # We run without CAP_SYS_RESOURCE here: no process may go below our own OOM score.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{node.folder / "cni-bin"}"]
    conf_dir = "{base / "net.d"}"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      BinaryName = "{cni / "runc"}"
      Root = "{base / "runc"}"
      SystemdCgroup = false
"""
    network = {
        "cniVersion": "1.0.0",
        "name": "preview-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node.folder / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    write(base / "net.d" / "10-preview-node.conflist", json.dumps(network, indent=2))
    # The plugins by their own names, in a folder of their own (bin/ holds every tool).
    plugins = node.folder / "cni-bin"
    plugins.mkdir()
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        (plugins / plugin).symlink_to((tools_bin() / plugin).resolve())
    return write(base / "config.toml", config)


def kubelet(node: RealNode) -> Path:
    assert node.plane.ca is not None
    # For pods with dnsPolicy Default: the cluster's DNS too, there is no other resolver to give them.
    write(node.folder / "resolv.conf", f"nameserver {addons.DNS_SERVICE_IP}\n")
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.network.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(node.plane.ca.cert_path)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{node.folder / 'containerd' / 'containerd.sock'}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{node.cgroup.name}",
        "cgroupsPerQOS": True,
        "failCgroupV1": False,
        "failSwapOn": False,
        "protectKernelDefaults": True,
        "clusterDNS": [addons.DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(node.folder / "resolv.conf"),
        "podLogsDir": str(node.folder / "pod-logs"),
        "maxPods": 60,
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # The machine's disk is shared: evict only when it is nearly full, not at the default 10-15 %.
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "registerNode": True,
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "shutdownGracePeriod": "0s",
        "enableServer": True,
    }
    return write(node.folder / "kubelet" / "config.yaml", config)


def kube_proxy(node: RealNode, kubeconfig: Path) -> Path:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "bindAddress": node.network.node_ip,
        "healthzBindAddress": f"127.0.0.1:{free_port()}",
        "metricsBindAddress": f"127.0.0.1:{free_port()}",
        "nodePortAddresses": [f"{node.network.node_ip}/32"],
        # conntrack limits and timeouts are the machine's, not ours: leave them be.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
            "udpTimeout": "0s",
            "udpStreamTimeout": "0s",
        },
    }
    return write(node.folder / "kube-proxy.yaml", config)


def registry(node: RealNode) -> Path:
    hashed = bcrypt.hashpw(node.registry_password.encode(), bcrypt.gensalt(rounds=5)).decode()
    htpasswd = write(node.folder / "registry" / "htpasswd", f"{node.registry_user}:{hashed}\n")
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(node.folder / "registry" / "data")},
            "delete": {"enabled": True},
        },
        "http": {"addr": node.registry, "secret": secrets.token_hex(16)},
        "auth": {"htpasswd": {"realm": "testbed", "path": str(htpasswd)}},
    }
    return write(node.folder / "registry" / "config.yml", config)
