"""`python -m bench NAME [options]`: run one benchmark; without NAME, list them."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "intake_overhead": "webhook intake (production) against a bare 202 endpoint, same gunicorn",
    "webhook_intake": "webhook intake with Redis up and down",
    "preview_lifecycle": "PR opened to ready against kubectl apply + rollout status; PR closed to teardown",
    "ttl_lateness": "time from a preview's expiry to its teardown being requested (1-minute TTLs)",
    "scale": "1,000 previews: scheduler pass, list/stats API, /metrics, RSS of each process",
    "burst": "200 PRs opened within 10 s with 4 workers: time to all ready, nothing done twice, intake p99",
    "template_clone": "a preview database cloned from a template against migrate and seed",
    "controlplane_footprint": "start time and memory of the test control plane",
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
        for name, what in BENCHMARKS.items():
            print(f"{name:24s} {what}")
        sys.exit(0 if len(sys.argv) < 2 else f"unknown benchmark: {sys.argv[1]}")
    name = sys.argv.pop(1)
    importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main()
