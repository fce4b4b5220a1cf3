"""Network namespaces for the real node, joined to the machine by one veth pair.

The root namespace gets one address on its end of the pair (and the connected
route that comes with it): nothing else of the machine's routes or firewall
changes. The node namespace has no default route, so nothing in it, or in a
pod behind it, can send a packet anywhere the test bed did not create.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from dataclasses import dataclass

# /30 links for the node, one per test session; the last octets are ours to choose.
NODE_LINKS = ipaddress.ip_network("10.213.0.0/16")
POD_CIDR = "10.214.0.0/24"  # inside the node namespace only
# A range every preview's egress policy denies (RFC 1918), where the canary listens.
CANARY_LINK = "192.168.213.0/30"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    # Root's sbin folders too: a plain login shell's PATH lacks them.
    path = f"/usr/local/sbin:/usr/sbin:/sbin:{os.environ.get('PATH', os.defpath)}"
    return subprocess.run(
        list(args), check=check, capture_output=True, text=True, timeout=30, env={**os.environ, "PATH": path}
    )


def in_netns(netns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run("ip", "netns", "exec", netns, *args, check=check)


def write_sysctl(netns: str, name: str, value: str) -> None:
    """A per-namespace sysctl (net.*), written as seen from inside `netns`."""
    path = "/proc/sys/" + name.replace(".", "/")
    in_netns(netns, "sh", "-c", f"echo {value} > {path}")


@dataclass
class NodeNetwork:
    netns: str
    canary_netns: str
    host_link: str  # the root namespace's end of the veth pair
    host_ip: str  # our address in the root namespace: the node reaches the host's servers here
    node_ip: str  # the node's address: kubelet, registry, DNS, Traefik listen here
    canary_ip: str  # a listener in a range previews may not reach

    @classmethod
    def create(cls) -> NodeNetwork:
        used = run("ip", "-o", "-4", "addr").stdout
        existing = set(run("ip", "netns", "list").stdout.split())
        for index, link in enumerate(NODE_LINKS.subnets(new_prefix=30)):
            host_ip, node_ip = (str(address) for address in list(link.hosts())[:2])
            name = f"preview-node-{index}"
            if f" {host_ip}/" in used or name in existing:
                continue
            network = cls(name, f"{name}-canary", f"pvnode{index}", host_ip, node_ip, "192.168.213.2")
            try:
                network._build(link.prefixlen)
            except subprocess.CalledProcessError:
                network.remove()  # taken by a run that started at the same moment: try the next link
                continue
            return network
        raise RuntimeError(f"no free /30 in {NODE_LINKS} for the real node")

    def _build(self, prefix: int) -> None:
        run("ip", "netns", "add", self.netns)
        run("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        run("ip", "addr", "add", f"{self.host_ip}/{prefix}", "dev", self.host_link)
        run("ip", "link", "set", self.host_link, "up")
        in_netns(self.netns, "ip", "addr", "add", f"{self.node_ip}/{prefix}", "dev", "eth0")
        in_netns(self.netns, "ip", "link", "set", "eth0", "up")
        in_netns(self.netns, "ip", "link", "set", "lo", "up")
        # Routed pod traffic, and bridged pod-to-pod traffic seen by kube-proxy's and the
        # policy enforcer's nftables rules: both settings belong to this namespace only.
        write_sysctl(self.netns, "net.ipv4.ip_forward", "1")
        write_sysctl(self.netns, "net.bridge.bridge-nf-call-iptables", "1")
        # The canary: its own namespace behind the node, at an address previews are denied.
        run("ip", "netns", "add", self.canary_netns)
        in_netns(
            self.netns,
            "ip",
            "link",
            "add",
            "canary",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            self.canary_netns,
        )
        link = ipaddress.ip_network(CANARY_LINK)
        gateway, canary = (str(address) for address in list(link.hosts())[:2])
        in_netns(self.netns, "ip", "addr", "add", f"{gateway}/{link.prefixlen}", "dev", "canary")
        in_netns(self.netns, "ip", "link", "set", "canary", "up")
        in_netns(self.canary_netns, "ip", "addr", "add", f"{canary}/{link.prefixlen}", "dev", "eth0")
        in_netns(self.canary_netns, "ip", "link", "set", "eth0", "up")
        in_netns(self.canary_netns, "ip", "link", "set", "lo", "up")
        # No route back to the pods: the pod network masquerades what leaves the node.

    def remove(self) -> None:
        """Deleting the namespaces deletes their interfaces, the host end of the pair with them."""
        for name in (self.canary_netns, self.netns):
            run("ip", "netns", "del", name, check=False)
        run("ip", "link", "del", self.host_link, check=False)

    def leftovers(self) -> list[str]:
        """What of this network is still on the machine (empty after remove())."""
        found = []
        namespaces = run("ip", "netns", "list").stdout.split()
        found += [f"netns {name}" for name in (self.netns, self.canary_netns) if name in namespaces]
        if run("ip", "link", "show", self.host_link, check=False).returncode == 0:
            found.append(f"link {self.host_link}")
        return found
