"""A burst of PRs: `--prs` (default 200) opened within 10 s, served by 4 workers.

On the real test bed: the branches are pushed first (one push), then the PRs are
opened through Gitea's API from 8 threads, and each preview is built (KWOK plays
the kaniko Job) and deployed. Measures the time from the first PR until every
preview is ready, and checks what must not happen twice: per commit one build,
one Deployment row and one success status; per PR one comment. Intake latency
during the burst comes from gunicorn's access log (request time of each
`POST /webhooks/gitea`): p50/p95/p99.

    .venv/bin/python -m bench.burst [--prs 200] [--workers 4]
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from app.db import open_database
from app.models import Deployment, Event, Preview, PreviewState
from bench.stack import Stack, preview_stack, report, summary, wait_for

ACCESS_LOG = '--access-logfile - --access-logformat "access %(m)s %(U)s %(s)s %(L)s"'
ACCESS_LINE = re.compile(r"access POST /webhooks/gitea (\d+) ([0-9.]+)")


def intake_seconds(stack: Stack) -> list[float]:
    text = (stack.folder / "web.log").read_text(errors="replace")
    return [float(seconds) for status, seconds in ACCESS_LINE.findall(text) if status == "202"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    with preview_stack(workers=args.workers, GUNICORN_CMD_ARGS=ACCESS_LOG) as stack:
        open_database(stack.env["DATABASE_URL"])
        repo = stack.repository("burst", "port: 8080\n")
        branches = []
        for number in range(args.prs):
            branch = f"burst-{number}"
            repo.git("checkout", "-b", branch, "main")
            (repo.workdir / "change.txt").write_text(f"{number}\n")
            repo.git("add", "-A")
            repo.git("commit", "-m", f"Burst {number}")
            branches.append(branch)
        repo.git("checkout", "main")
        repo.git("push", "origin", *branches)
        shas = {branch: repo.git("rev-parse", branch) for branch in branches}
        time.sleep(5)  # the pushes' own deliveries (ignored: not task branches) are answered
        before = len(intake_seconds(stack))

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            numbers = list(pool.map(lambda branch: repo.open_pr(branch, branch), branches))
        opened_in = time.perf_counter() - started
        wait_for(
            lambda: Preview.select().where(Preview.state == PreviewState.READY).count() >= args.prs,
            timeout=1800,
            interval=1,
            what=f"{args.prs} ready previews",
        )
        all_ready = time.perf_counter() - started
        intake = intake_seconds(stack)[before:]

        previews = list(Preview.select())
        builds = Counter(event.preview_id for event in Event.select(Event.preview).where(Event.phase == "build"))
        deployments = Counter(row.preview_id for row in Deployment.select(Deployment.preview))
        with ThreadPoolExecutor(8) as pool:
            successes = list(
                pool.map(
                    lambda sha: sum(
                        1 for s in repo.statuses(sha) if s["status"] == "success" and s["context"] == "preview"
                    ),
                    shas.values(),
                )
            )
            comments = list(pool.map(lambda number: len(repo.bot_comments(number)), numbers))
    report(
        "burst",
        {
            "prs": args.prs,
            "workers": args.workers,
            "opened_in_s": round(opened_in, 1),
            "all_ready_s": round(all_ready, 1),
            "ready": sum(1 for p in previews if p.state == PreviewState.READY),
            "built_twice": sum(1 for p in previews if builds[p.id] > 1),
            "deployments_twice": sum(1 for p in previews if deployments[p.id] > 1),
            "success_status_not_once": sum(1 for count in successes if count != 1),
            "comments_not_once": sum(1 for count in comments if count != 1),
            "intake_deliveries": len(intake),
            "intake_ms": {**summary(intake, 1000, 1), "p99": round(sorted(intake)[int(len(intake) * 0.99)] * 1000, 1)},
        },
    )


if __name__ == "__main__":
    main()
