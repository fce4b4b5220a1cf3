"""What the scheduler does each pass: expire TTLs, start previews waiting for a slot,
resume work a dead worker left behind, collect namespaces nobody owns.

Every write is a conditional update on what the pass read, so it never undoes
what a webhook or a worker wrote in between.

Time is a parameter. Nothing here deletes on an error or an empty answer: a
Kubernetes failure raises before any deletion, and only namespaces carrying our
managed-by label are ever considered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import peewee

from app.db import database, database_now
from app.domain.k8s.labels import LABEL_MANAGED_BY, LABEL_PREVIEW_ID, MANAGED_BY
from app.domain.naming import NAMESPACE_PREFIX
from app.domain.states import PreviewState
from app.models import Event, Preview, Repository, WebhookDelivery
from app.settings import Settings
from app.usecases.deploy import budgets, capacity, preview_database, sleeping, usage
from app.usecases.intake import accept, repositories
from app.usecases.jobs import enqueue_deploy, enqueue_report, enqueue_teardown
from app.usecases.operations import visits
from app.usecases.ports import Cluster, GiteaError, NamespaceInfo, Queue, Services

log = logging.getLogger(__name__)

ORPHAN_GRACE = timedelta(minutes=10)
# A delivery whose job Redis does not hold this long after it was received is queued again
# (the web queues it as it answers; only Redis being down or losing it leaves it out).
DELIVERY_QUEUE_GRACE = timedelta(seconds=10)
# A circuit breaker: more orphans than this in one pass smells like a wrong database, not like drift.
MAX_ORPHANS_PER_PASS = 10


class SweepRefused(Exception):
    """The sweep saw something that makes deleting unsafe; nothing was deleted."""


def request_teardown(
    queue: Queue, preview: Preview, reason: str, now: datetime, only_if: peewee.Expression | None = None
) -> bool:
    """Mark the preview for teardown and queue it; False when it was already going (or `only_if` no longer holds)."""
    with database.atomic():
        marked = Preview.change(
            preview.id, states=PreviewState.ACTIVE, also=only_if, now=now, state=PreviewState.DELETING
        )
        if not marked:
            return False
        Preview.update(waiting_since=None).where(Preview.id == preview.id).execute()
        Event.record(preview, "teardown", f"{reason}: teardown requested")
    enqueue_teardown(queue, preview.id, reason, str(int(now.timestamp())))
    return True


def expire(queue: Queue, settings: Settings, now: datetime, dry_run: bool = False) -> list[int]:
    """Previews past their TTL (and not pinned) are torn down."""
    if not dry_run:
        # Every preview holding resources has an expiry, whatever wrote it (older versions did not).
        for state, ttl in ((PreviewState.FAILED, settings.failed_preview_ttl), (None, settings.preview_ttl)):
            missing = Preview.update(expires_at=now + ttl).where(
                (Preview.holds_slot == True) & Preview.expires_at.is_null()  # noqa: E712
            )
            (missing.where(Preview.state == state) if state else missing).execute()
    expired = []
    # Conditional on the expiry still being past: a redeploy or a pin may have come in between.
    still_expired = (Preview.expires_at <= now) & (Preview.pinned == False)  # noqa: E712
    for preview in Preview.expired(now):
        if dry_run or request_teardown(queue, preview, "TTL expired", now, only_if=still_expired):
            expired.append(preview.id)
    return expired


def _still_queued(preview: Preview, waiting: set[str]) -> bool:
    """A job for the preview still waits in Redis: it is busy behind a long queue, not lost."""
    mine = (f"deploy-{preview.id}-", f"teardown-{preview.id}-")
    if any(job_id.startswith(mine) for job_id in waiting):
        return True
    unfinished = WebhookDelivery.select(WebhookDelivery.id).where(
        (WebhookDelivery.preview == preview.id) & WebhookDelivery.processed_at.is_null()
    )
    return any(f"delivery-{delivery.id}" in waiting for delivery in unfinished)


def resume_stuck(queue: Queue, settings: Settings, now: datetime, dry_run: bool = False) -> list[int]:
    """Re-queue work that nobody is doing: a worker died (its lease expired) or its job was lost.

    Work whose job still waits in the queue is busy, not lost, and is left to it: a backlog
    must not multiply jobs. Each stall is resumed once: the expired lease is cleared, or the
    row touched, by a conditional update that only one scheduler can win.
    """
    resumed = []
    capped = settings.max_active_previews is not None
    waiting = queue.waiting_job_ids()
    for preview in Preview.stuck(now - settings.stalled_after, now, capped):
        if preview.lease_owner is None and _still_queued(preview, waiting):
            continue
        if dry_run:
            resumed.append(preview.id)
            continue
        last_progress = preview.updated_at
        claim = Preview.update(lease_owner=None, lease_expires_at=None, updated_at=now).where(
            (Preview.id == preview.id)
            & (Preview.state == preview.state)
            & (Preview.updated_at == preview.updated_at)
            & (
                Preview.lease_owner.is_null()
                if preview.lease_owner is None
                # Still the same lease, and still expired: never take a lease its worker just renewed.
                else (Preview.lease_owner == preview.lease_owner) & (Preview.lease_expires_at < now)
            )
        )
        if claim.execute() != 1:
            continue
        tag = f"resume-{int(now.timestamp())}"
        if preview.state == PreviewState.DELETING:
            enqueue_teardown(queue, preview.id, "resumed after a stalled teardown", tag)
        else:
            enqueue_deploy(queue, preview.id, preview.head_sha, tag)
        Event.record(preview, "resume", f"resumed: no progress since {last_progress:%Y-%m-%d %H:%M:%S} UTC")
        log.info("resumed stuck preview preview_id=%s state=%s", preview.id, preview.state)
        resumed.append(preview.id)
    return resumed


# How often the scheduler asks Gitea whether a repository with live previews was renamed or deleted.
REPOSITORY_CHECK_EVERY = timedelta(minutes=5)


def follow_repositories(context: Services, now: datetime) -> list[int]:
    """Repositories with live previews, asked of Gitea by id every few minutes: a renamed one is
    followed (its previews keep their names); one Gitea has not shown for REPOSITORY_GONE_AFTER
    has every live preview torn down, pinned or not. Gitea's 404 says the same for a deleted
    repository and for a private one the bot can no longer see: until then the previews stay,
    and the log and each preview's history say why they will go. Returns the previews torn down."""
    live = Preview.select(Preview.repository).where(Preview.state.in_(PreviewState.ACTIVE))
    due = Repository.checked_at.is_null() | (Repository.checked_at < now - REPOSITORY_CHECK_EVERY)
    torn_down = []
    for repository in Repository.select().where(Repository.id.in_(live) & due):
        try:
            gone = repositories.follow_gitea(context.gitea, repository) == "deleted"
        except GiteaError as error:  # asked again next pass; the other repositories still are now
            log.warning("could not ask Gitea about repository=%s error=%s", repository.full_name, error)
            continue
        missing_since = (repository.missing_since or now) if gone else None
        Repository.update(checked_at=now, missing_since=missing_since).where(Repository.id == repository.id).execute()
        previews = Preview.select().where((Preview.repository == repository) & Preview.state.in_(PreviewState.ACTIVE))
        if missing_since is None:
            if repository.missing_since is not None:
                _say_back(repository, list(previews))
            continue
        grace = context.settings.repository_gone_after
        if now - missing_since < grace:
            if repository.missing_since is None:
                _say_missing(repository, list(previews), missing_since + grace)
            continue
        log.info("repository gone from Gitea: tearing its previews down repository=%s", repository.full_name)
        for preview in previews:
            if request_teardown(context.queue, preview, "Gitea no longer shows the repository", now):
                torn_down.append(preview.id)
    return torn_down


def _say_missing(repository: Repository, previews: list[Preview], going_at: datetime) -> None:
    why = (
        f"Gitea answers 404 for {repository.full_name}: deleted, or this service's Gitea account lost"
        f" access to it; its previews are removed at {going_at.replace(microsecond=0).isoformat()} UTC"
        " unless Gitea shows it again before"
    )
    log.warning("repository missing in Gitea repository=%s previews=%s", repository.full_name, len(previews))
    for preview in previews:
        Event.record(preview, "drift", why)


def _say_back(repository: Repository, previews: list[Preview]) -> None:
    log.info("repository shown by Gitea again repository=%s", repository.full_name)
    for preview in previews:
        Event.record(preview, "drift", f"Gitea shows {repository.full_name} again: its previews stay")


def report_pending(queue: Queue, now: datetime, dry_run: bool = False) -> list[int]:
    """Queue a report for each preview whose state Gitea has not been told (its worker died
    before, or Gitea was down): tried again with backoff until Gitea has it."""
    due = list(Preview.reports_due(now))
    if not dry_run:
        for preview in due:
            enqueue_report(queue, preview.id, preview.report_version, preview.report_attempts)
    return [preview.id for preview in due]


@dataclass
class OrphanReport:
    deleted: list[str] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)


def _owners() -> dict[str, str]:
    """Preview id (as a label reads) -> the namespace that live preview owns: one query per pass."""
    live = Preview.select(Preview.id, Preview.namespace).where(
        (Preview.state != PreviewState.DELETED) & Preview.namespace.is_null(False)
    )
    return {str(preview.id): preview.namespace for preview in live}


def collect_orphans(
    kube: Cluster, now: datetime, dry_run: bool = False, grace: timedelta = ORPHAN_GRACE
) -> OrphanReport:
    """Delete our namespaces that no live preview owns; mark live previews whose namespace vanished."""
    report = OrphanReport()
    namespaces = kube.list_namespaces(f"{LABEL_MANAGED_BY}={MANAGED_BY},environment=preview")
    if namespaces and not Preview.select().exists():
        raise SweepRefused("the database knows no previews but the cluster has preview namespaces: wrong DATABASE_URL?")
    candidates = _orphaned(namespaces, now, grace)
    if len(candidates) > MAX_ORPHANS_PER_PASS:
        raise SweepRefused(
            f"{len(candidates)} orphan namespaces in one pass (limit {MAX_ORPHANS_PER_PASS}); not deleting"
        )
    for name in candidates:
        report.deleted.append(name)
        if not dry_run:
            kube.delete_namespace(name)
            log.info("orphan namespace deleted namespace=%s", name)
    report.vanished = _mark_vanished(kube, {namespace.name for namespace in namespaces}, now, grace, dry_run)
    return report


def _orphaned(namespaces: list[NamespaceInfo], now: datetime, grace: timedelta) -> list[str]:
    """The namespaces of ours (by name, not by labels alone) that no live preview owns, older than `grace`."""
    owners = _owners()
    candidates = []
    for namespace in namespaces:
        if namespace.terminating or not namespace.name.startswith(NAMESPACE_PREFIX):
            continue  # only names we give: two labels alone do not make a namespace ours
        if owners.get(namespace.labels.get(LABEL_PREVIEW_ID, "")) == namespace.name:
            continue
        if now - (namespace.created_at or now) < grace:
            continue
        candidates.append(namespace.name)
    return candidates


def _mark_vanished(kube: Cluster, seen: set[str], now: datetime, grace: timedelta, dry_run: bool) -> list[int]:
    """Live previews whose namespace is gone (not in `seen`, nor there when asked again): marked deleted."""
    vanished = []
    # A failed preview that never ran (its build failed) may never have had its namespace.
    ran = Preview.state.in_(PreviewState.SERVING) | (
        (Preview.state == PreviewState.FAILED) & Preview.deployed_sha.is_null(False)
    )
    holding = Preview.select().where(ran & Preview.namespace.is_null(False))
    for preview in holding:
        if preview.namespace in seen or now - preview.updated_at < grace:
            continue
        if kube.namespace_labels(preview.namespace) is not None:  # listed between our two reads
            continue
        if dry_run:
            vanished.append(preview.id)
            continue
        marked = Preview.change(
            preview.id,
            states=(preview.state,),
            also=(Preview.updated_at == preview.updated_at) & Preview.lease_owner.is_null(),
            now=now,
            state=PreviewState.DELETED,
            deployed_sha=None,
            holds_slot=False,
            report_detail=f"its namespace {preview.namespace} vanished",
        )
        if marked:
            vanished.append(preview.id)
            Event.record(preview, "drift", f"namespace {preview.namespace} vanished; marked deleted")
    return vanished


def run_pass(context: Services, now: datetime | None = None, dry_run: bool = False) -> dict[str, Any]:
    """One pass; returns what each step did (or its error). With dry_run nothing changes."""
    if now is None:
        with database.connection_context():
            now = database_now()  # the database's clock: leases and expiries are written by it
    queue, settings = context.queue, context.settings
    steps: dict[str, Callable[[], Any]] = {
        "expired": lambda: expire(queue, settings, now, dry_run),
        "slots_freed": lambda: capacity.free_stale_slots(now, dry_run),
        "usage_settled": lambda: usage.settle(now, dry_run),
        "released": lambda: budgets.release(queue, settings, now, dry_run),
        "started": lambda: capacity.start_waiting(queue, settings, now, dry_run),
        "resumed": lambda: resume_stuck(queue, settings, now, dry_run),
        "orphans": lambda: collect_orphans(context.kube, now, dry_run),
        "orphan_databases": lambda: preview_database.collect_orphans(
            settings, context.shared_databases(settings), now, dry_run
        ),
    }
    if settings.traffic_metrics_url:
        steps["visited"] = lambda: visits.record_visits(context.traffic, settings, now, dry_run)
    if settings.sleeping_on:
        steps["slept"] = lambda: sleeping.send_to_sleep(queue, settings, now, dry_run)
    # Also with sleeping switched off: whatever sleeps then is woken.
    steps["woken"] = lambda: sleeping.resume_wakes(queue, settings, now, dry_run)
    if context.gitea.configured:
        steps["reported"] = lambda: report_pending(queue, now, dry_run)
        if not dry_run:
            steps["repositories_gone"] = lambda: follow_repositories(context, now)
    if not dry_run:
        steps = {
            "requeued": lambda: accept.requeue_unfinished(
                queue, now - DELIVERY_QUEUE_GRACE, now - settings.stalled_after
            ),
            **steps,
        }
    summary: dict[str, Any] = {}
    for name, step in steps.items():
        try:
            with database.connection_context():
                summary[name] = step()
        except SweepRefused as error:  # the circuit breaker: nothing deleted, said in /metrics
            log.error("scheduler step refused step=%s why=%s", name, error)
            summary[name] = f"refused: {error}"
        except Exception as error:  # one failed step must not stop the others or the loop
            log.exception("scheduler step failed step=%s", name)
            summary[name] = f"error: {error}"
    return summary


def sweep_refused(summary: dict[str, Any]) -> bool:
    """The pass's orphan sweep refused to delete (its circuit breaker is open)."""
    return any(isinstance(value, str) and value.startswith("refused:") for value in summary.values())


def removed_counts(summary: dict[str, Any]) -> dict[str, int]:
    counts = {key: len(value) for key, value in summary.items() if isinstance(value, list)}
    orphans = summary.get("orphans")
    if isinstance(orphans, OrphanReport):
        counts["orphan_namespaces"], counts["vanished"] = len(orphans.deleted), len(orphans.vanished)
    return counts
