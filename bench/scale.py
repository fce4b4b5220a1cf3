"""10,000 previews: one scheduler pass, the list and stats API, a /metrics scrape, and memory.

On the real test bed: one preview is deployed by the pipeline for real, and its
objects (namespace, quota, limits, network policy, role binding, secret,
deployment, service, ingress) are copied into `--previews` namespaces, each owned
by a preview row seeded in the service's database with a history like a real one
(3 deliveries, 2 deployments with phase timings, 6 events). Then:

- one scheduler pass (`lifecycle.run_pass`, what the scheduler process runs), timed
  in this process, 3 times; target < 10 s;
- `GET /api/previews` (first page of 50, and of 200) and `/api/previews/stats`,
  `--requests` times each through gunicorn: p50/p95; target p95 < 200 ms;
- `GET /metrics`, 20 times;
- RSS of the web (gunicorn's master and workers), worker and scheduler processes;
  target < 200 MB each.

    .venv/bin/python -m bench.scale [--previews 10000] [--requests 50]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from app.db import database, open_database
from app.domain import costs
from app.domain.k8s.labels import LABEL_PREVIEW_ID
from app.domain.states import PreviewState
from app.models import Deployment, Event, Preview, PreviewUsage, Repository, WebhookDelivery
from bench.stack import IMAGE, Stack, now_utc, objects_of, preview_stack, report, summary
from tests.testbed.kube.waiting import eventually

REPOSITORIES = 20


def gitea_repositories(stack: Stack) -> list[Repository]:
    """REPOSITORIES empty repositories, in Gitea and registered: the scheduler asks Gitea about
    each repository with live previews, and tears down every preview of one it does not know."""
    run = uuid.uuid4().hex[:6]
    found = [stack.gitea.api("POST", "/user/repos", json={"name": f"scale-{run}-{n}"}) for n in range(REPOSITORIES)]
    return [Repository.upsert(repo["full_name"], repo["clone_url"]) for repo in found]


def seed_rows(stack: Stack, count: int) -> list[Preview]:
    """`count` ready previews across REPOSITORIES repositories, with a plausible history each."""
    now = now_utc()
    repositories = gitea_repositories(stack)
    rows = []
    for number in range(count):
        created = now - timedelta(minutes=random.randint(1, 60 * 24 * 10))
        slug = f"scale-{number}"
        rows.append(
            {
                "repository": repositories[number % REPOSITORIES],
                "target_key": f"{repositories[number % REPOSITORIES].full_name}#{number}",
                "pr_number": number,
                "branch": f"change-{number}",
                "head_sha": f"{number:040x}",
                "deployed_sha": f"{number:040x}",
                "state": PreviewState.READY,
                "holds_slot": True,
                "slug": slug,
                "namespace": f"preview-{slug}",
                "url": f"https://{slug}.preview.bench.test",
                "expires_at": now + timedelta(days=7),
                "created_at": created,
                "updated_at": created,
            }
        )
    with database.atomic():
        for start in range(0, count, 200):
            Preview.insert_many(rows[start : start + 200]).execute()
    previews = list(Preview.select().where(Preview.repository.in_(repositories)))
    history_of(previews, now)
    return previews


def history_of(previews: list[Preview], now: datetime) -> None:
    """Deliveries, deployments with phase timings, and events for each preview, in bulk."""
    deliveries, deployments, events, stretches = [], [], [], []
    timings = {"build": 0.2, "deploy": 0.3, "configure": 0.1, "rollout": 0.2, "report": 0.1}
    for preview in previews:
        for n in range(3):
            deliveries.append(
                {
                    "delivery_uuid": f"{preview.id}-{n}",
                    "event": "pull_request",
                    "event_type": "pull_request",
                    "repository_full_name": preview.repository.full_name,
                    "target_key": preview.target_key,
                    "head_sha": preview.head_sha,
                    "intent": "deploy",
                    "work_key": f"{preview.id}-{n}",
                    "outcome": "accepted",
                    "preview": preview.id,
                    "received_at": preview.created_at,
                    "processed_at": preview.created_at,  # history: carried out long ago
                }
            )
        for n in range(2):
            deployments.append(
                {"preview": preview.id, "head_sha": f"{n}{preview.head_sha[1:]}", "status": "ready", "timings": timings}
            )
        for phase in ("queued", "build", "deploy", "configure", "rollout", "ready"):
            events.append({"preview": preview.id, "phase": phase, "message": phase, "created_at": now})
        # Its stretch of use since it took its slot, as claim_slot opens one.
        stretches.append(
            {
                "preview": preview.id,
                "repository": preview.repository_id,
                "cpu_cores": costs.APP_CORES,
                "memory_gib": costs.APP_GIB,
                "started_at": preview.created_at,
            }
        )
    with database.atomic():
        for model, rows in (
            (WebhookDelivery, deliveries),
            (Deployment, deployments),
            (Event, events),
            (PreviewUsage, stretches),
        ):
            for start in range(0, len(rows), 500):
                model.insert_many(rows[start : start + 500]).execute()


def copy_objects(stack: Stack, template: list[dict], namespace: str, previews: list[Preview]) -> None:
    """The template preview's objects, once per seeded preview, in its own namespace."""
    from workers.context import services

    kube = services().kube
    text = json.dumps(template)

    def create(preview: Preview) -> None:
        objects = json.loads(text.replace(f'"{namespace}"', f'"{preview.namespace}"'))
        for obj in objects:
            obj["metadata"].setdefault("labels", {})[LABEL_PREVIEW_ID] = str(preview.id)
            kube.apply(obj)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, previews))


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """The process stopped (SIGSTOP) meanwhile. The scheduler must not pass while rows and
    their namespaces are half seeded: it would rightly mark a ready preview whose namespace is
    not copied yet as vanished, and then find that namespace an orphan (10,000 previews take
    about 25 minutes to seed)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def timed_gets(stack: Stack, path: str, count: int) -> list[float]:
    session = stack.session()
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        answer = session.get(f"{stack.url}{path}", timeout=30)
        timings.append(time.perf_counter() - started)
        answer.raise_for_status()
    return timings


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def process_memory(stack: Stack) -> dict[str, float]:
    """RSS of each service process; the Procfile's commands run under `sh -c exec`, so the pid is theirs."""
    memory = {}
    for name, process in stack.processes.items():
        memory[name] = rss_mb(process.pid)
        if name == "web":
            for number, child in enumerate(children(process.pid), start=1):
                memory[f"web.worker{number}"] = rss_mb(child)
    return memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--previews", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    with preview_stack(workers=1) as stack:
        os.environ.update(stack.env)
        open_database(stack.env["DATABASE_URL"])
        repo = stack.repository("scale", f"image: {IMAGE}\nport: 8080\n")
        repo.commit("template", {"change.txt": "1\n"}, "The template preview")
        repo.git("checkout", "main")
        repo.open_pr("template", "The template preview")
        template_preview = eventually(
            lambda: Preview.get_or_none(Preview.state == PreviewState.READY), timeout=180, what="the template preview"
        )
        template = objects_of(stack.plane.kubeconfig, template_preview.namespace)
        started = time.perf_counter()
        with paused(stack.processes["scheduler"].pid):
            previews = seed_rows(stack, args.previews)
            copy_objects(stack, template, template_preview.namespace, previews)
        print(
            f"seeded {len(previews)} previews and their namespaces in {time.perf_counter() - started:.0f} s", flush=True
        )
        time.sleep(30)  # the controllers' and the scheduler's first passes over the new objects

        from app.usecases.operations import lifecycle
        from workers.context import services

        passes = []
        for _ in range(3):
            started = time.perf_counter()
            outcome = lifecycle.run_pass(services())
            passes.append(time.perf_counter() - started)
            errors = {key: value for key, value in outcome.items() if isinstance(value, str)}
            if errors:
                raise SystemExit(f"the scheduler pass failed: {errors}")
        figures = {
            "previews": Preview.select().count(),
            "scheduler_pass_s": summary(passes),
            "list_50_ms": summary(timed_gets(stack, "/api/previews", args.requests), 1000, 1),
            "list_200_ms": summary(timed_gets(stack, "/api/previews?per_page=200", args.requests), 1000, 1),
            "stats_ms": summary(timed_gets(stack, "/api/previews/stats", args.requests), 1000, 1),
            "metrics_ms": summary(timed_gets(stack, "/metrics", 20), 1000, 1),
            "rss_mb": process_memory(stack),
        }
    report("scale", figures)


if __name__ == "__main__":
    main()
