"""The real node leaves the machine as it found it: no mount, namespace, cgroup, process or
folder of its own, and the root network namespace's routes and firewall unchanged."""

from __future__ import annotations

import subprocess

import pytest

from tests.testbed.node.checks import in_pod
from tests.testbed.node.node import leftovers, real_node

pytestmark = [pytest.mark.node, pytest.mark.slow]


def root_namespace() -> dict[str, str]:
    def show(*command: str) -> str:
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout

    return {
        "routes": show("ip", "route", "show", "table", "all"),
        "nftables": show("nft", "list", "ruleset"),
        "iptables": "".join(line for line in show("iptables-save").splitlines(True) if not line.startswith("#")),
    }


def test_a_node_that_ran_pods_leaves_nothing_behind():
    before = root_namespace()
    with real_node() as node:
        code, log = in_pod(node, "default", "echo ran > /tmp/mark && cat /tmp/mark")
        assert (code, log) == (0, "ran\n")
        during = root_namespace()
        # The one change to the root namespace: the connected route of the node's /30 link.
        added = set(during["routes"].splitlines()) - set(before["routes"].splitlines())
        assert all(node.network.host_link in route for route in added), added
        assert added, added
        assert during["nftables"] == before["nftables"]
        assert during["iptables"] == before["iptables"]
        folder, network, cgroup = node.folder, node.network, node.cgroup
    assert leftovers(folder, network, cgroup) == []
    assert root_namespace() == before
