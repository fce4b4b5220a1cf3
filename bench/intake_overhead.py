"""Webhook intake with the production settings against a bare Flask endpoint, side by side.

Both run under the Procfile's gunicorn command (gevent workers, WEB_CONCURRENCY=2):
the service (signature check, parse, plan, PostgreSQL, Redis) and `bench.bare_app`
(answers 202). Signed deliveries of distinct PRs go to each in alternating rounds:
one client at a time for latency (p50/p95/p99), then several clients at once for
throughput. Prints both and the ratios; targets: service p99 < 20 ms, throughput
at least half the bare endpoint's.

    .venv/bin/python -m bench.intake_overhead [--requests 300] [--rounds 3] [--clients 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from bench.stack import percentile
from tests.testbed import servers
from tests.testbed.factories import SECRET, payload, webhook_request, with_changes
from tests.testbed.service_processes import ROOT, procfile, service_processes


def bodies(count: int) -> list[dict]:
    prepared = []
    for _ in range(count):
        number = uuid.uuid4().int % 1_000_000 + 1
        body = with_changes(
            payload("pull_request_opened"),
            number=number,
            **{"pull_request.number": number, "pull_request.head.sha": uuid.uuid4().hex + "0" * 8},
        )
        prepared.append(webhook_request(body, "pull_request"))
    return prepared


def timed_posts(url: str, requests_: list[dict]) -> list[float]:
    session = requests.Session()
    timings = []
    for request in requests_:
        started = time.perf_counter()
        answer = session.post(url, data=request["data"], headers=request["headers"], timeout=10)
        timings.append(time.perf_counter() - started)
        assert answer.status_code == 202, answer.text
    return timings


def throughput(url: str, clients: int, per_client: int) -> float:
    """Deliveries a second with `clients` posting at once."""
    batches = [bodies(per_client) for _ in range(clients)]
    threads = [threading.Thread(target=timed_posts, args=(url, batch)) for batch in batches]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return clients * per_client / (time.perf_counter() - started)


def figures(timings: list[float], rates: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(percentile(ordered, 0.95) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "per_second": round(statistics.median(rates), 1),
    }


def bare_endpoint(port: int, env: dict[str, str]) -> subprocess.Popen:
    command = procfile()["web"].replace("'app:create_app()'", "'bench.bare_app:app'")
    process = subprocess.Popen(
        ["sh", "-c", f"exec {command}"],
        env={**env, "BIND": f"127.0.0.1:{port}", "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=servers.die_with_parent,
    )
    servers.wait_for_port(port, process)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="sequential deliveries per round and endpoint")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    with servers.redis_server() as redis, servers.postgres_server() as postgres:
        port, bare_port = servers.free_port(), servers.free_port()
        env = {
            "DATABASE_URL": postgres.create_database("bench"),
            "REDIS_URL": redis.url,
            "GITEA_WEBHOOK_SECRET": SECRET,
            "KUBECONFIG": "/nonexistent",  # no worker is measured here
            "WEB_CONCURRENCY": "2",
        }
        with tempfile.TemporaryDirectory() as folder, service_processes(env, Path(folder), port, web_only=True):
            bare = bare_endpoint(bare_port, env)
            try:
                urls = {
                    "service": f"http://127.0.0.1:{port}/webhooks/gitea",
                    "bare": f"http://127.0.0.1:{bare_port}/webhooks/gitea",
                }
                timings: dict[str, list[float]] = {name: [] for name in urls}
                rates: dict[str, list[float]] = {name: [] for name in urls}
                for url in urls.values():
                    timed_posts(url, bodies(30))  # warm up
                for _ in range(args.rounds):
                    for name, url in urls.items():
                        timings[name] += timed_posts(url, bodies(args.requests))
                        rates[name].append(throughput(url, args.clients, args.requests // args.clients))
            finally:
                servers.stop_process(bare)
    results = {name: figures(timings[name], rates[name]) for name in timings}
    for name, found in results.items():
        print(f"{name:8s} " + "  ".join(f"{key}={value}" for key, value in found.items()), flush=True)
    service, bare_figures = results["service"], results["bare"]
    summary = {
        "requests_per_endpoint": args.requests * args.rounds,
        **results,
        "p50_ratio_service_over_bare": round(service["p50_ms"] / bare_figures["p50_ms"], 2),
        "throughput_ratio_service_over_bare": round(service["per_second"] / bare_figures["per_second"], 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
