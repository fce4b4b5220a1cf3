"""Use cases behind the JSON API: trigger, delete, inspect, count and price previews."""

from __future__ import annotations

import contextlib
import fnmatch
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee

from app.db import database, utcnow
from app.domain import costs
from app.domain.gitea_events import RepositoryRef
from app.domain.k8s import database as database_objects
from app.domain.k8s.labels import LABEL_COMPONENT, LABEL_PREVIEW_ID
from app.domain.k8s.workload import APP_REQUESTS
from app.domain.naming import AUTH_SECRET
from app.domain.planning import DEPLOY, Plan
from app.domain.states import PreviewState
from app.models import Deployment, Event, Preview, Repository
from app.settings import Settings
from app.usecases import jobs
from app.usecases.deploy import budgets, usage
from app.usecases.errors import NotFound, Unavailable
from app.usecases.intake import desired_state
from app.usecases.operations import lifecycle
from app.usecases.ports import Cluster, GiteaApi, GiteaError, Queue, QueueUnavailable, Services


def _repository_ref(gitea: GiteaApi, full_name: str) -> RepositoryRef:
    try:
        found = gitea.repository(full_name)
    except GiteaError as error:
        raise Unavailable(f"Gitea: {error}") from error
    if found is None:
        raise NotFound(f"repository {full_name!r} not found")
    return RepositoryRef(
        full_name=found["full_name"],
        clone_url=found["clone_url"],
        private=bool(found.get("private")),
    )


def request_preview(
    services: Services, repository: str, branch: str | None = None, pr_number: int | None = None
) -> tuple[Preview, bool]:
    """Create or update a preview as a webhook would, at the head commit Gitea reports now.

    Returns the preview and whether its deploy job is queued (False: Redis was down,
    the scheduler resumes it).
    """
    client, queue = services.gitea, services.queue
    ref = _repository_ref(client, repository)
    try:
        if pr_number is not None:
            pull = client.pull_request(ref.full_name, pr_number)
            if pull is None:
                raise NotFound(f"pull request #{pr_number} not found in {ref.full_name}")
            if pull.get("state") != "open":
                raise NotFound(f"pull request #{pr_number} in {ref.full_name} is {pull.get('state')}")
            wanted = Plan(
                intent=DEPLOY,
                reason="requested through the API",
                target_key=Preview.pr_key(ref.full_name, pr_number),
                branch=pull["head"]["ref"],
                pr_number=pr_number,
                head_sha=pull["head"]["sha"],
                action="api",
            )
        else:
            assert branch is not None
            sha = client.branch_head(ref.full_name, branch)
            if sha is None:
                raise NotFound(f"branch {branch!r} not found in {ref.full_name}")
            wanted = Plan(
                intent=DEPLOY,
                reason="requested through the API",
                target_key=Preview.branch_key(ref.full_name, branch),
                branch=branch,
                head_sha=sha,
                action="api",
            )
    except GiteaError as error:
        raise Unavailable(f"Gitea: {error}") from error
    except (KeyError, TypeError) as error:
        raise Unavailable(f"Gitea answered without {error}") from error
    with database.atomic():
        preview = desired_state.want_deploy(ref, wanted)
    try:
        jobs.enqueue_deploy(queue, preview.id, preview.head_sha, f"api-{int(utcnow().timestamp())}")
        return preview, True
    except QueueUnavailable:
        return preview, False


def task_branch(settings: Settings, task_id: str) -> str:
    """The branch of a task: the first task-branch pattern with its `*` replaced by the task id."""
    pattern = settings.task_branch_patterns[0]
    branch = pattern.replace("*", task_id, 1) if "*" in pattern else f"{pattern.rstrip('/')}/{task_id}"
    if not fnmatch.fnmatchcase(branch, pattern):
        raise NotFound(f"task {task_id!r} does not make a branch matching {pattern!r}")
    return branch


def task_repository(repository: str | None) -> str:
    """The repository a task route means: the one named, or the only one we know."""
    if repository:
        return repository
    known = list(Repository.select(Repository.full_name).limit(2))
    if len(known) != 1:
        raise NotFound("name the repository: ?repository=owner/name (more than one, or none, is known)")
    return str(known[0].full_name)


def preview_for_task(settings: Settings, task_id: str, repository: str | None) -> Preview:
    full_name = task_repository(repository)
    preview = Preview.by_key(Preview.branch_key(full_name, task_branch(settings, task_id)))
    if preview is None or preview.state == PreviewState.DELETED:
        raise NotFound(f"task {task_id!r} has no preview in {full_name}")
    return preview


def delete_preview(queue: Queue, preview: Preview, now: datetime | None = None) -> Preview:
    if preview.state in (PreviewState.DELETING, PreviewState.DELETED):
        return preview
    lifecycle.request_teardown(queue, preview, "deleted through the API", now or utcnow())
    going: Preview = Preview.get_by_id(preview.id)
    return going


def approve(gitea: GiteaApi, queue: Queue, preview: Preview, approver: str, sha: str, now: datetime) -> bool:
    """A writer's approval of commit `sha`, the one their page showed (the caller checked the
    permission). Nothing is approved unless it is still the preview's head and Gitea's: a push
    between the page and the click approves nothing."""
    if not sha or sha != preview.head_sha or preview.pr_number is None:
        return False
    pull = gitea.pull_request(preview.repository.full_name, preview.pr_number) or {}
    if (pull.get("head") or {}).get("sha") != sha or pull.get("state") != "open":
        Event.record(preview, "approval", f"approval by {approver} ignored: {sha[:12]} is no longer the PR's head")
        return False
    approved = Preview.change(
        preview.id,
        sha=sha,
        states=(PreviewState.PENDING_APPROVAL,),
        now=now,
        state=PreviewState.QUEUED,
        approved_sha=sha,
        approved_by=approver,
    )
    if approved:
        Event.record(preview, "approval", f"{sha[:12]} approved by {approver} from the dashboard")
        with contextlib.suppress(QueueUnavailable):  # the scheduler resumes it
            jobs.enqueue_deploy(queue, preview.id, sha, f"approved-{int(now.timestamp())}")
    return approved


def require_deployed(preview: Preview) -> Preview:
    if preview.state == PreviewState.DELETED or not preview.namespace:
        raise NotFound(f"preview {preview.id} has no credentials (state {preview.state})")
    return preview


def credentials(settings: Settings, kube: Cluster, preview: Preview) -> dict[str, Any]:
    """The basic-auth user and password of a live preview, read from its Secret; and its
    database's URL when it has one (the only place that shows the database password)."""
    require_deployed(preview)
    data = kube.read_secret_data(preview.namespace, AUTH_SECRET)
    if not data or "password" not in data:
        raise NotFound(f"preview {preview.id} has no credentials yet")
    found: dict[str, Any] = {
        "url": preview.url,
        "username": data.get("username", "preview"),
        "password": data["password"],
    }
    if preview.database_engine:
        database = kube.read_secret_data(preview.namespace, database_objects.SECRET) or {}
        found["database_url"] = database.get("DATABASE_URL")
    return found


def logs(settings: Settings, kube: Cluster, preview: Preview, tail: int) -> dict[str, str]:
    app_log = ""
    if preview.namespace and preview.state not in (PreviewState.DELETED,):
        app_log = kube.pod_log_tail(preview.namespace, f"{LABEL_COMPONENT}=app", tail)
    build_log = kube.pod_log_tail(
        settings.build_namespace, f"{LABEL_PREVIEW_ID}={preview.id},{LABEL_COMPONENT}=build", tail
    )
    if not build_log:
        last = preview.deployments.order_by(Deployment.id.desc()).first()
        build_log = (last.build_log_tail or "") if last else ""
        build_log = "\n".join(build_log.splitlines()[-tail:])
    return {"app": app_log, "build": build_log}


@dataclass(frozen=True)
class Page:
    items: list[Preview]
    total: int
    page: int
    per_page: int


def list_previews(state: str | None, repository: str | None, page: int, per_page: int) -> Page:
    query = Preview.select(Preview, Repository).join(Repository)
    if state:
        query = query.where(Preview.state == state)
    if repository:
        query = query.where(peewee.fn.LOWER(Repository.full_name) == repository.lower())
    total = query.count()
    items = list(query.order_by(Preview.id.desc()).paginate(page, per_page))
    return Page(items, total, page, per_page)


AGE_BUCKETS = (("<1h", timedelta(hours=1)), ("1-24h", timedelta(hours=24)), ("1-7d", timedelta(days=7)), (">7d", None))


def cost_summary(settings: Settings, preview: Preview, now: datetime) -> dict[str, Any]:
    """What one preview spent and spends, and its repository's month against its budget."""
    spent = usage.cost_of(settings, preview.id, now)
    repository = preview.repository
    month = usage.spent_by_repository(settings, costs.month_start(now), now, [repository.id]).get(repository.id, 0.0)
    return {
        "currency": settings.cost_currency,
        "so_far": round(spent.so_far, 4),
        "per_day": round(spent.per_hour * 24, 4),
        "repository_this_month": round(month, 4),
        "repository_budget": budgets.budget_of(settings, repository),
    }


def stats(settings: Settings, now: datetime) -> dict[str, Any]:
    by_state = {state: 0 for state in PreviewState.ALL}
    by_state.update(Preview.select(Preview.state, peewee.fn.COUNT(Preview.id)).group_by(Preview.state).tuples())
    # Only the two columns used, as plain tuples: full rows, then model instances, were most of
    # this answer's time (10,000 previews: p95 267 ms).
    active = list(
        Preview.select(Preview.state, Preview.created_at).where(Preview.state.in_(PreviewState.ACTIVE)).tuples()
    )
    by_age = {name: 0 for name, _ in AGE_BUCKETS}
    for _, created_at in active:
        age = now - created_at
        by_age[next(name for name, limit in AGE_BUCKETS if limit is None or age < limit)] += 1
    # The previews holding their slots now, priced as the PR comments price them.
    running = usage.open_cost(settings, now)
    threshold = settings.active_alert_threshold
    return {
        "total": sum(by_state.values()),
        "active": len(active),
        "by_state": by_state,
        "by_age": by_age,
        "cost": {
            "currency": settings.cost_currency,
            "per_hour": round(running.per_hour, 4),
            "so_far": round(running.so_far, 2),
            "requests_per_preview": {"cpu": APP_REQUESTS["cpu"], "memory": APP_REQUESTS["memory"]},
            "prices": {"cpu_core_hour": settings.price_cpu_core_hour, "memory_gb_hour": settings.price_memory_gb_hour},
        },
        "alert": {"threshold": threshold, "over": len(active) > threshold},
    }
