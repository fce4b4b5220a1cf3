"""Webhook intake latency: Redis up against Redis down (the outbox path), side by side.

Gitea waits at most 5 s for an answer and never retries, so both paths must stay
far below that. Runs the real web process (gunicorn) on loopback against a real
Redis and a real PostgreSQL, posts signed deliveries one at a time, and prints
the percentiles and the down/up ratio.

    .venv/bin/python -m bench.webhook_intake [--deliveries 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import requests

from tests.testbed import servers
from tests.testbed.factories import SECRET, payload, webhook_request, with_changes
from tests.testbed.service_processes import service_processes


def post_many(url: str, count: int) -> list[float]:
    session = requests.Session()
    timings = []
    for number in range(count):
        body = with_changes(
            payload("pull_request_opened"),
            number=number + 1,
            **{"pull_request.number": number + 1, "pull_request.head.sha": uuid.uuid4().hex + "0" * 8},
        )
        request = webhook_request(body, "pull_request")
        started = time.perf_counter()
        response = session.post(url, data=request["data"], headers=request["headers"], timeout=10)
        timings.append(time.perf_counter() - started)
        assert response.status_code == 202, response.text
    return timings


def describe(name: str, timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    figures = {
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[int(len(ordered) * 0.95) - 1] * 1000,
        "max_ms": ordered[-1] * 1000,
    }
    print(f"{name:12s} " + "  ".join(f"{k}={v:7.1f}" for k, v in figures.items()), flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=200)
    args = parser.parse_args()
    with servers.redis_server() as redis, servers.postgres_server() as postgres:
        port = servers.free_port()
        env = {
            "DATABASE_URL": postgres.create_database("bench"),
            "REDIS_URL": redis.url,
            "GITEA_WEBHOOK_SECRET": SECRET,
            "KUBECONFIG": "/nonexistent",  # the worker is not measured here
            "WEB_CONCURRENCY": "2",
        }
        with tempfile.TemporaryDirectory() as folder, service_processes(env, Path(folder), port):
            url = f"http://127.0.0.1:{port}/webhooks/gitea"
            post_many(url, 20)  # warm up
            up = describe("redis up", post_many(url, args.deliveries))
            redis.stop()
            down = describe("redis down", post_many(url, args.deliveries))
            redis.start()
    ratio = down["p50_ms"] / up["p50_ms"]
    print(
        json.dumps(
            {
                "deliveries": args.deliveries,
                "redis_up": up,
                "redis_down": down,
                "p50_ratio_down_over_up": round(ratio, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
