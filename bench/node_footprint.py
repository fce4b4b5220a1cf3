"""Warm start time and memory of the real node (tools and images already built), beside the
control plane alone started in the same run, one after the other (a ratio: these machines are
noisy).

The node is usable once it is Ready and CoreDNS and Traefik are available; the control plane
once its default ServiceAccount exists. Memory is the resident set of the node's own processes
(containerd, kubelet, kube-proxy, registry) and of every process in its pods' cgroups, read
after `--settle` idle seconds.

    .venv/bin/python -m bench.node_footprint [--runs 3] [--settle 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench.controlplane_footprint import rss_mib
from tests.testbed.kube.controlplane import control_plane
from tests.testbed.node.node import real_node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds idle before reading memory")
    args = parser.parse_args()
    plane_starts, node_starts, memories = [], [], []
    for run in range(args.runs):
        started = time.monotonic()
        with control_plane(nodes=0):
            plane_starts.append(time.monotonic() - started)
        started = time.monotonic()
        with real_node() as node:
            node_starts.append(time.monotonic() - started)
            time.sleep(args.settle)
            pids = {p.popen.pid for p in node.processes} | node.cgroup.pids()
            memories.append(sum(rss_mib(pid) for pid in pids if _alive(pid)))
        print(
            f"run {run + 1}: control plane {plane_starts[-1]:.1f} s, real node and its cluster"
            f" {node_starts[-1]:.1f} s, node RSS {memories[-1]:.0f} MiB",
            flush=True,
        )
    plane, node_median = statistics.median(plane_starts), statistics.median(node_starts)
    print(
        json.dumps(
            {
                "controlplane_start_seconds_median": round(plane, 1),
                "node_start_seconds_median": round(node_median, 1),
                "node_to_controlplane_ratio": round(node_median / plane, 2),
                "node_rss_mib_median": round(statistics.median(memories)),
            }
        )
    )


def _alive(pid: int) -> bool:
    try:
        return rss_mib(pid) >= 0
    except OSError:
        return False


if __name__ == "__main__":
    main()
