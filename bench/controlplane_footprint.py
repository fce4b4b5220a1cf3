"""Warm start time and memory of the test control plane (binaries already built).

Starts it `--runs` times; prints the seconds until usable (nodes Ready, default
ServiceAccount present) and the resident memory of each process once idle.

    .venv/bin/python -m bench.controlplane_footprint [--runs 3] [--settle 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from tests.testbed.kube.controlplane import control_plane


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds idle before reading memory")
    args = parser.parse_args()
    starts, memories = [], []
    for run in range(args.runs):
        started = time.monotonic()
        with control_plane() as plane:
            starts.append(time.monotonic() - started)
            time.sleep(args.settle)
            memory = {p.name: round(rss_mib(p.popen.pid), 1) for p in plane.processes}
            memories.append(memory)
        total = sum(memory.values())
        print(f"run {run + 1}: usable after {starts[-1]:.1f} s, RSS {total:.0f} MiB {memory}", flush=True)
    print(
        json.dumps(
            {
                "start_seconds_median": round(statistics.median(starts), 1),
                "rss_mib_total_median": round(statistics.median(sum(m.values()) for m in memories)),
            }
        )
    )


if __name__ == "__main__":
    main()
