"""Several worker processes at once against the real control plane, Redis, PostgreSQL and
Gitea: one writer per preview, exact capacity, and work that survives a killed worker."""

import random
import re
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests
from kubernetes import client as k8s
from kubernetes import watch

from app.db import database
from app.domain.states import PreviewState
from app.models import Deployment, Event, Preview
from tests.testbed.factories import SECRET, payload, webhook_request, with_changes
from tests.testbed.gitea_repo import create_repository
from tests.testbed.helpers import SHORT_LEASE_TTL, kill_worker, register, service_env, start_busy_worker
from tests.testbed.kube.controlplane import BEHAVIOUR_LABEL
from tests.testbed.kube.waiting import eventually
from tests.testbed.servers import free_port
from tests.testbed.service_processes import ROOT, service_processes

pytestmark = [pytest.mark.kube, pytest.mark.slow]

LEASE_TTL = SHORT_LEASE_TTL


@pytest.fixture
def database_url(postgres_server):
    """Several processes share the database: PostgreSQL, as in production."""
    return postgres_server.create_database(f"workers_{uuid.uuid4().hex[:8]}")


def hooked_repository(gitea, prefix, tmp_path, port):
    """A Gitea repository whose webhook calls the service on `port`, the bot its admin, registered."""
    from tests.testbed.gitea_server import BOT

    hook = f"http://127.0.0.1:{port}/webhooks/gitea"
    repo = create_repository(gitea, f"{prefix}-{uuid.uuid4().hex[:6]}", tmp_path / "work", hook, SECRET)
    gitea.api("PUT", f"/repos/{repo.full_name}/collaborators/{BOT}", json={"permission": "admin"})
    register(repo.full_name)
    return repo


def post_delivery(port, body, kind):
    response = requests.post(f"http://127.0.0.1:{port}/webhooks/gitea", timeout=10, **webhook_request(body, kind))
    assert response.status_code == 202, response.text
    return response.json()


def rows(*where):
    with database.connection_context():
        return list(Preview.select().where(*where) if where else Preview.select())


def test_thirty_quick_pushes_to_one_pr_with_four_workers_end_at_the_last_commit(
    app, kube_settings, gitea, kube_api, tmp_path
):
    port = free_port()
    env = service_env(kube_settings, port, GITEA_URL=gitea.url, GITEA_TOKEN=gitea.bot_token)
    with service_processes(env, tmp_path, port, workers=4):
        repo = create_repository(
            gitea, f"race-{uuid.uuid4().hex[:6]}", tmp_path / "work", f"http://127.0.0.1:{port}/webhooks/gitea", SECRET
        )
        register(repo.full_name, build_pod_labels={BEHAVIOUR_LABEL: "slow"})  # builds take 1.5-3 s
        shas = [repo.commit("feature/race", {"n.txt": "0"}, "push 0")]
        for n in range(1, 30):  # the next 29 commits, pushed one at a time below
            (repo.workdir / "n.txt").write_text(str(n))
            repo.git("commit", "-am", f"push {n}")
            shas.append(repo.git("rev-parse", "HEAD"))
        position = {sha[:12]: n for n, sha in enumerate(shas)}

        builds: dict[str, set[str]] = {}  # build Job name -> uids it was created with
        comments_seen: list[int] = []
        done = threading.Event()

        def watch_builds():
            batch = k8s.BatchV1Api(kube_api)
            while not done.is_set():
                for event in watch.Watch().stream(
                    batch.list_namespaced_job, kube_settings.build_namespace, timeout_seconds=2
                ):
                    job = event["object"].metadata
                    builds.setdefault(job.name, set()).add(job.uid)

        def sample_comment(number):
            while not done.is_set():
                for comment in repo.bot_comments(number):
                    found = re.search(r"\| Commit \| `([0-9a-f]{12})`", comment["body"])
                    if found and (not comments_seen or comments_seen[-1] != position[found.group(1)]):
                        comments_seen.append(position[found.group(1)])
                time.sleep(0.1)

        watcher = threading.Thread(target=watch_builds, daemon=True)
        watcher.start()
        number = repo.open_pr("feature/race")
        sampler = threading.Thread(target=sample_comment, args=(number,), daemon=True)
        sampler.start()
        for sha in shas[1:]:
            time.sleep(random.uniform(0.05, 0.2))
            repo.git("push", "origin", f"{sha}:refs/heads/feature/race")

        def ready_at_last():
            status = repo.latest_status(shas[-1])
            preview = rows(Preview.pr_number == number)
            return status if status and status["status"] == "success" and preview[0].state == "ready" else None

        status = eventually(ready_at_last, timeout=300, interval=0.5, what="success status on the last commit")
        time.sleep(3)  # let anything still running show itself before looking
        done.set()
        watcher.join(10)
        sampler.join(10)

    [preview] = rows(Preview.pr_number == number)
    assert preview.deployed_sha == shas[-1]
    assert status["target_url"] == preview.url
    # The cluster runs the last commit, in exactly one namespace.
    namespaces = [
        ns
        for ns in k8s.CoreV1Api(kube_api).list_namespace().items
        if (ns.metadata.annotations or {}).get("previews.gitea.io/repository") == repo.full_name
    ]
    assert [ns.metadata.name for ns in namespaces] == [preview.namespace]
    assert namespaces[0].metadata.annotations["previews.gitea.io/head-sha"] == shas[-1]
    [app_deployment] = k8s.AppsV1Api(kube_api).list_namespaced_deployment(preview.namespace).items
    with database.connection_context():
        digest = Deployment.get((Deployment.preview == preview.id) & (Deployment.head_sha == shas[-1])).digest
    assert app_deployment.spec.template.spec.containers[0].image.endswith(f"@{digest}")
    # One build Job per commit that was built: never two for one commit.
    assert builds, builds
    assert all(len(uids) == 1 for uids in builds.values()), builds
    # Gitea heard about commits in push order only: no status or comment for a commit after a newer one's.
    order = [position[sha[:12]] for sha in repo.statuses_in_order("preview")]
    assert order == sorted(order), order
    assert order[-1] == len(shas) - 1
    assert comments_seen == sorted(comments_seen), comments_seen
    assert comments_seen[-1] == len(shas) - 1, comments_seen
    assert len(repo.bot_comments(number)) == 1


def test_four_workers_never_run_more_previews_than_the_cap_and_start_them_in_order(
    app, kube_settings, kube_api, tmp_path
):
    cap, opened = 3, 20
    port = free_port()
    env = service_env(kube_settings, port, MAX_ACTIVE_PREVIEWS=str(cap))
    core = k8s.CoreV1Api(kube_api)
    most = {"database": 0, "cluster": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            with database.connection_context():
                most["database"] = max(most["database"], Preview.active().count())
            live = core.list_namespace(label_selector="app.kubernetes.io/managed-by=gitea-previews").items
            most["cluster"] = max(most["cluster"], sum(1 for ns in live if not ns.metadata.deletion_timestamp))
            time.sleep(0.05)

    with service_processes(env, tmp_path, port, workers=4):
        register("acme/shop", image="registry.preview.test/shop@sha256:" + "c" * 64)  # no build: quicker
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        numbers = list(range(100, 100 + opened))
        for number in numbers:
            body = with_changes(
                payload("pull_request_opened"),
                number=number,
                **{"pull_request.number": number, "pull_request.head.sha": f"{number:040x}"},
            )
            post_delivery(port, body, "pull_request")

        ready_order: list[int] = []
        deadline = time.monotonic() + 300
        while len(ready_order) < opened and time.monotonic() < deadline:
            for preview in rows(Preview.state == PreviewState.READY):
                if preview.pr_number not in ready_order:
                    ready_order.append(preview.pr_number)
                    # Done reviewing: closing it frees its slot for the next in line.
                    closed = with_changes(
                        payload("pull_request_closed"),
                        number=preview.pr_number,
                        **{"pull_request.number": preview.pr_number, "pull_request.head.sha": preview.head_sha},
                    )
                    post_delivery(port, closed, "pull_request")
            time.sleep(0.1)
        done.set()
        sampler.join(10)

    assert sorted(ready_order) == numbers, f"ready: {ready_order}"
    assert most["database"] <= cap, most
    assert most["cluster"] <= cap, most
    assert most["database"] == cap  # the cap was reached, so the test did test it
    with database.connection_context():
        claims = Event.select(Event.preview).where(Event.phase == "slot").order_by(Event.id)
        claimed = [Preview.get_by_id(e.preview_id).pr_number for e in claims]
    assert sorted(claimed) == numbers  # one claim each
    # First come, first served: when several slots are free at once their takers may race each
    # other, but nobody is overtaken by more than the cap minus one.
    for taken in range(1, opened + 1):
        assert set(numbers[: max(0, taken - (cap - 1))]) <= set(claimed[:taken]), claimed


def start_worker(env, folder):
    with open(folder / f"worker-{time.monotonic_ns()}.log", "wb") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "workers.worker"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )


def test_a_worker_killed_at_any_moment_of_a_deploy_twenty_times_every_time_ends_ready(
    app, kube_settings, kube_api, tmp_path
):
    port = free_port()
    env = service_env(kube_settings, port)
    rounds = 20
    with service_processes(env, tmp_path, port, workers=0) as processes:
        register("acme/shop")
        worker = start_worker(env, tmp_path)
        try:
            for round_number in range(rounds):
                sha = f"{round_number + 1:040x}"
                kind = "pull_request" if round_number == 0 else "pull_request_sync"
                name = "pull_request_opened" if round_number == 0 else "pull_request_synchronized"
                post_delivery(port, with_changes(payload(name), **{"pull_request.head.sha": sha}), kind)
                time.sleep(random.uniform(0.0, 2.5))  # somewhere in intake, build, apply, rollout or report
                before = next(iter(rows()), None)  # none yet: the worker had not planned the delivery
                kill_worker(worker)
                killed_at = time.monotonic()
                worker = start_worker(env, tmp_path)
                if before is not None and before.lease_owner:
                    # The dead worker's lease stops counting within its bound (the lease, then a scheduler
                    # pass or two, which take seconds on a loaded 2-core machine: CI once saw 6.1 s against
                    # a 3 s lease), and the work goes on.
                    eventually(
                        lambda owner=before.lease_owner: rows()[0].lease_owner != owner,
                        timeout=LEASE_TTL + 10,
                        interval=0.1,
                        what="the dead worker's lease to lapse",
                    )
                    assert time.monotonic() - killed_at <= LEASE_TTL + 5
                eventually(
                    lambda sha=sha: any(p.state == PreviewState.READY and p.deployed_sha == sha for p in rows()),
                    timeout=90,
                    interval=0.2,
                    what=f"round {round_number}: ready at {sha[:12]}",
                )
                eventually(lambda: rows()[0].lease_owner is None, timeout=LEASE_TTL + 5, what="lease released")
                [preview] = rows()
                namespaces = k8s.CoreV1Api(kube_api).list_namespace(
                    label_selector=f"previews.gitea.io/preview-id={preview.id}"
                )
                assert [ns.metadata.name for ns in namespaces.items] == [preview.namespace]
                jobs = k8s.BatchV1Api(kube_api).list_namespaced_job(
                    kube_settings.build_namespace, label_selector=f"previews.gitea.io/preview-id={preview.id}"
                )
                # Older commits' builds are deleted when superseded: only this commit's, and only once.
                assert [job.metadata.name for job in jobs.items] == [f"build-{preview.slug}-{sha[:12]}"]
                assert len(k8s.AppsV1Api(kube_api).list_namespaced_deployment(preview.namespace).items) == 1
        finally:
            kill_worker(worker)
        assert processes["web"].poll() is None


def test_a_busy_worker_rides_out_redis_going_away(client, services, redis_server, tmp_path):
    """Redis restarts (a failover, an upgrade) while a worker is in the middle of a deploy: the
    worker waits for it instead of exiting, which under `make run` would stop every process."""
    log = (tmp_path / "worker.log").open("w")  # what RQ says while Redis is away
    worker, _ = start_busy_worker(client, services, stderr=log)
    try:
        redis_server.stop()
        try:
            time.sleep(10)
            assert worker.poll() is None, f"the worker exited with {worker.returncode} while Redis was away"
        finally:
            redis_server.start()
        time.sleep(5)
        assert worker.poll() is None, f"the worker exited with {worker.returncode} after Redis came back"
    finally:
        kill_worker(worker)
        log.close()


def test_redis_flushed_in_the_middle_of_fifty_deliveries_everything_converges(app, kube_settings, gitea, tmp_path):
    """FLUSHALL (a failover to an empty replica) while Gitea sends 50 previews' webhooks, under a
    cap of 3, with one PR waiting for approval: every delivery is carried out all the same, the
    cap's three are ready, every other preview is in line, the approval is not lost."""
    import redis

    from app.models import WebhookDelivery

    port = free_port()
    env = service_env(kube_settings, port, GITEA_URL=gitea.url, GITEA_TOKEN=gitea.bot_token, MAX_ACTIVE_PREVIEWS="3")
    with service_processes(env, tmp_path, port, workers=2):
        repo = hooked_repository(gitea, "flush", tmp_path, port)
        reader = f"reader{uuid.uuid4().hex[:6]}"
        password = gitea.create_user(reader)
        gitea.api("PUT", f"/repos/{repo.full_name}/collaborators/{reader}", json={"permission": "read"})
        number, pr_sha = repo.agit_pr(reader, password, {"agit.txt": "from a reader"}, topic="flush")
        heads = {}
        for n in range(49):
            if n == 20:
                redis.Redis.from_url(kube_settings.redis_url).flushall()
            repo.git("checkout", "main")
            heads[f"task/b{n}"] = repo.commit(f"task/b{n}", {"n.txt": str(n)}, f"branch {n}")
        repo.comment(number, "/preview")  # the owner approves the reader's PR

        def converged():
            with database.connection_context():
                deliveries = WebhookDelivery.select().where(WebhookDelivery.outcome == "accepted")
                if deliveries.where(WebhookDelivery.processed_at.is_null()).exists():
                    return False
                previews = list(Preview.select())
            holding = [p for p in previews if p.holds_slot]
            waiting = [p for p in previews if not p.holds_slot]
            return (
                len(previews) == 50
                and len(holding) == 3
                and all(p.state == PreviewState.READY for p in holding)
                and all(p.state == PreviewState.QUEUED and p.waiting_since is not None for p in waiting)
            )

        eventually(converged, timeout=300, interval=2, what="50 previews: 3 ready, 47 in line")
        pr_preview = next(p for p in rows() if p.pr_number == number)
        assert pr_preview.approved_sha == pr_sha  # the approval, sent after the flush, was carried out
        by_branch = {p.branch: p for p in rows() if p.pr_number is None}
        assert {branch: p.head_sha for branch, p in by_branch.items()} == heads

        def told(preview):
            status = repo.latest_status(preview.head_sha)
            wanted = "success" if preview.state == PreviewState.READY else "pending"
            return status is not None and status["status"] == wanted

        eventually(lambda: all(told(p) for p in rows()), timeout=120, interval=2, what="Gitea told every state")


def test_four_workers_killed_at_random_with_gitea_databases_and_teardowns_converge(
    app, kube_settings, gitea, kube_api, postgres_server, tmp_path
):
    """Four workers, one of them SIGKILLed every second or two, while five PRs with a database
    each are opened, pushed to, and two of them closed: at the end every open PR is ready at its
    head with a success status, one comment and its database; every closed one is gone, its
    namespace and database with it, and its comment says so."""
    from app.adapters.sql_admin import PostgresAdmin

    image = "registry.example.test/acme/app@sha256:" + "e" * 64
    prefix = f"k{uuid.uuid4().hex[:6]}_"
    port = free_port()
    env = service_env(
        kube_settings,
        port,
        GITEA_URL=gitea.url,
        GITEA_TOKEN=gitea.bot_token,
        PREVIEW_POSTGRES_ADMIN_URL=postgres_server.url(),
        PREVIEW_DATABASE_PREFIX=prefix,
        PREVIEW_ALLOWED_IMAGES="registry.example.test/",
    )
    admin = PostgresAdmin(postgres_server.url())
    with service_processes(env, tmp_path, port, workers=0):
        repo = hooked_repository(gitea, "chaos", tmp_path, port)
        preview_file = f"image: {image}\nport: 3000\ndatabase:\n  engine: postgres\n  seed: [seed]\n"
        workers = [start_worker(env, tmp_path) for _ in range(4)]
        done = threading.Event()

        def chaos():
            while not done.wait(random.uniform(1.0, 2.0)):
                victim = random.randrange(len(workers))
                kill_worker(workers[victim])
                workers[victim] = start_worker(env, tmp_path)

        killer = threading.Thread(target=chaos, daemon=True)
        killer.start()
        try:
            numbers, heads = [], {}
            for n in range(5):
                repo.git("checkout", "main")
                repo.commit(f"feature/c{n}", {".gitea/preview.yml": preview_file, "c.txt": "0"}, f"pr {n}")
                numbers.append(repo.open_pr(f"feature/c{n}", f"Change {n}"))
            for n in range(5):
                repo.git("checkout", f"feature/c{n}")
                heads[numbers[n]] = repo.commit(f"feature/c{n}", {"c.txt": "1"}, f"push {n}")
            closed = numbers[:2]
            for number in closed:
                repo.close_pr(number)
            open_ones = numbers[2:]

            def converged():
                by_number = {p.pr_number: p for p in rows()}
                if len(by_number) < 5:
                    return False
                ready = all(
                    by_number[n].state == PreviewState.READY
                    and by_number[n].deployed_sha == heads[n]
                    and by_number[n].database_seeded_at is not None
                    for n in open_ones
                )
                gone = all(by_number[n].state == PreviewState.DELETED for n in closed)
                settled = all(p.lease_owner is None and p.reported_version == p.report_version for p in rows())
                return ready and gone and settled

            eventually(converged, timeout=300, interval=1, what="open PRs ready, closed ones gone, all reported")
        finally:
            done.set()
            killer.join()
            for worker in workers:
                kill_worker(worker)

        by_number = {p.pr_number: p for p in rows()}
        databases = admin.names(prefix)
        for number in open_ones:
            preview = by_number[number]
            assert repo.latest_status(heads[number])["status"] == "success"
            [comment] = repo.bot_comments(number)
            assert heads[number][:12] in comment["body"]
            assert "ready" in comment["body"]
            assert preview.database_name in databases
            assert k8s.CoreV1Api(kube_api).read_namespace(preview.namespace).status.phase == "Active"
        for number in closed:
            preview = by_number[number]
            [comment] = repo.bot_comments(number)
            assert "The preview was removed" in comment["body"]
            eventually(
                lambda name=preview.namespace: (
                    not k8s.CoreV1Api(kube_api).list_namespace(field_selector=f"metadata.name={name}").items
                ),
                timeout=90,
                what="closed PR's namespace gone",
            )
        assert len(databases) == len(open_ones)  # the closed PRs' databases were dropped
