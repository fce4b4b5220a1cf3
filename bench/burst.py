"""A burst of PRs: `--prs` (default 200) PR-opened deliveries within 10 s, served by 4 workers.

Gitea on this 2-core machine needs about a second of its own per PR it opens, so it
cannot open 200 PRs in 10 s. The burst is therefore made of Gitea's real deliveries:
the PRs are opened in Gitea first with the repository's webhook pointing at a
recorder in this process, then the recorded `pull_request` deliveries (Gitea's
bodies, headers and signatures, untouched) are sent to the service from 8
threads as fast as it answers. Each preview is built (KWOK plays the kaniko Job),
deployed, and reported on its real PR.

Measures: the time from the first delivery until every preview is ready, intake
latency of the burst's deliveries (p50/p95/p99, client side), and what must not
happen twice: per PR one build, one Deployment row, one success status and one
comment.

    .venv/bin/python -m bench.burst [--prs 200] [--workers 4]
"""

from __future__ import annotations

import argparse
import http.server
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import requests

from app.db import open_database
from app.domain.states import PreviewState
from app.models import Deployment, Event, Preview
from bench.stack import percentile, preview_stack, report, summary
from tests.testbed import servers
from tests.testbed.kube.waiting import eventually

KEPT_HEADERS = ("Content-Type", "X-Gitea-Delivery", "X-Gitea-Event", "X-Gitea-Event-Type", "X-Gitea-Signature")


@contextmanager
def delivery_recorder() -> Iterator[tuple[str, list[dict]]]:
    """A webhook receiver that keeps Gitea's PR-opened deliveries as they came."""
    recorded: list[dict] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("X-Gitea-Event-Type") == "pull_request" and json.loads(body)["action"] == "opened":
                recorded.append({"data": body, "headers": {key: self.headers[key] for key in KEPT_HEADERS}})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    port = servers.free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}/", recorded
    finally:
        server.shutdown()


def send(url: str, delivery: dict) -> float:
    started = time.perf_counter()
    answer = requests.post(url, data=delivery["data"], headers=delivery["headers"], timeout=30)
    elapsed = time.perf_counter() - started
    if answer.status_code != 202 or answer.json()["outcome"] != "received":
        raise SystemExit(f"a delivery was not received: {answer.status_code} {answer.text}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    with preview_stack(workers=args.workers) as stack, delivery_recorder() as (recorder_url, recorded):
        open_database(stack.env["DATABASE_URL"])
        repo = stack.repository("burst", "port: 8080\n", webhook_url=recorder_url)
        branches = []
        for number in range(args.prs):
            branches.append(f"burst-{number}")
            repo.git("checkout", "-b", branches[-1], "main")
            (repo.workdir / "change.txt").write_text(f"{number}\n")
            repo.git("add", "-A")
            repo.git("commit", "-m", f"Burst {number}")
        repo.git("checkout", "main")
        repo.git("push", "origin", *branches)
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            numbers = list(pool.map(lambda branch: repo.open_pr(branch, branch), branches))
        eventually(lambda: len(recorded) >= args.prs, timeout=300, interval=0.5, what="Gitea's deliveries")
        print(f"Gitea opened {args.prs} PRs in {time.perf_counter() - started:.0f} s", flush=True)

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            intake = list(pool.map(lambda delivery: send(f"{stack.url}/webhooks/gitea", delivery), recorded))
        sent_in = time.perf_counter() - started
        eventually(
            lambda: Preview.select().where(Preview.state == PreviewState.READY).count() >= args.prs,
            timeout=1800,
            interval=1,
            what=f"{args.prs} ready previews",
        )
        all_ready = time.perf_counter() - started

        previews = list(Preview.select())
        builds = Counter(event.preview_id for event in Event.select(Event.preview).where(Event.phase == "build"))
        deployments = Counter(row.preview_id for row in Deployment.select(Deployment.preview))
        heads = [repo.git("rev-parse", branch) for branch in branches]
        with ThreadPoolExecutor(8) as pool:
            successes = list(
                pool.map(
                    lambda sha: sum(
                        1 for s in repo.statuses(sha) if s["status"] == "success" and s["context"] == "preview"
                    ),
                    heads,
                )
            )
            comments = list(pool.map(lambda number: len(repo.bot_comments(number)), numbers))
    report(
        "burst",
        {
            "prs": args.prs,
            "workers": args.workers,
            "deliveries_sent_in_s": round(sent_in, 1),
            "all_ready_s": round(all_ready, 1),
            "ready": sum(1 for p in previews if p.state == PreviewState.READY),
            "built_twice": sum(1 for p in previews if builds[p.id] > 1),
            "deployments_twice": sum(1 for p in previews if deployments[p.id] > 1),
            "success_status_not_once": sum(1 for count in successes if count != 1),
            "comments_not_once": sum(1 for count in comments if count != 1),
            "intake_ms": {**summary(intake, 1000, 1), "p99": round(percentile(intake, 0.99) * 1000, 1)},
        },
    )


if __name__ == "__main__":
    main()
