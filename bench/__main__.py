"""`python -m bench NAME [options]`: run one benchmark; `python -m bench all`: every one, in turn;
without NAME, list them. Each prints its progress and ends with one JSON line of figures."""

from __future__ import annotations

import importlib
import sys

from tests.testbed.interrupts import run_to_the_end, stop_like_ctrl_c

BENCHMARKS = {
    "intake_overhead": "webhook intake (production) against a bare 202 endpoint, same gunicorn",
    "preview_lifecycle": "PR opened to ready against kubectl apply + rollout status; PR closed to teardown",
    "ttl_lateness": "time from a preview's expiry to its teardown being requested (1-minute TTLs)",
    "scale": "10,000 previews (or --previews N): scheduler pass, list/stats API, /metrics, RSS of each process",
    "burst": "200 PR-opened deliveries within 10 s with 4 workers: time to all ready, nothing twice, intake",
    "webhook_intake": "webhook intake with Redis up and down",
    "template_clone": "a preview database cloned from a template against migrate and seed",
    "controlplane_footprint": "start time and memory of the test control plane",
    "node_footprint": "warm start time and memory of the real node, beside the control plane alone",
    "chart_install": "helm install to every pod ready on the real node, beside a plain Deployment of the image",
    "push_to_page": "on the real node: git push to the page serving that commit, with phases and kaniko's cache use",
    "wake_time": "on the real node: a sleeping preview from the first request to the app's answer",
}


def run_all() -> int:
    """Each benchmark in its own process (one test bed at a time); the failures are counted, not fatal."""
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        if run_to_the_end([sys.executable, "-m", "bench", name]):
            failed.append(name)
    if failed:
        print(f"failed: {' '.join(failed)}", flush=True)
    return 1 if failed else 0


def main() -> None:
    stop_like_ctrl_c()  # a stopped benchmark stops the servers and the node it started
    if len(sys.argv) >= 2 and sys.argv[1] == "all":
        sys.exit(run_all())
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        for name, what in BENCHMARKS.items():
            print(f"{name:24s} {what}")
        sys.exit(0 if len(sys.argv) < 2 else f"unknown benchmark: {sys.argv[1]}")
    name = sys.argv.pop(1)
    importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main()
