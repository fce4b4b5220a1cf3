"""What the scheduler does each pass: expire TTLs, start previews waiting for a slot,
resume work a dead worker left behind, collect namespaces nobody owns.

Time is a parameter. Nothing here deletes on an error or an empty answer: a
Kubernetes failure raises before any deletion, and only namespaces carrying our
managed-by label are ever considered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from app.adapters.jobqueue import JobQueue
from app.adapters.kube import Kube
from app.db import database, utcnow
from app.domain.manifests import LABEL_MANAGED_BY, LABEL_PREVIEW_ID, MANAGED_BY
from app.models import Event, Preview, PreviewState
from app.settings import Settings
from app.usecases import intake

if TYPE_CHECKING:
    from app.usecases.pipeline import Services

log = logging.getLogger(__name__)

DEPLOY_JOB = "workers.jobs.deploy_preview"
TEARDOWN_JOB = "workers.jobs.teardown_preview"
ORPHAN_GRACE = timedelta(minutes=10)
# A circuit breaker: more orphans than this in one pass smells like a wrong database, not like drift.
MAX_ORPHANS_PER_PASS = 10


class SweepRefused(Exception):
    """The sweep saw something that makes deleting unsafe; nothing was deleted."""


def stuck_after(settings: Settings) -> timedelta:
    """Longer than any healthy run: a build, a rollout and some margin."""
    return settings.build_timeout + settings.rollout_timeout + timedelta(minutes=5)


def enqueue_deploy(queue: JobQueue, preview: Preview, tag: str) -> bool:
    return queue.enqueue(
        DEPLOY_JOB, preview.id, preview.head_sha, job_id=f"deploy-{preview.id}-{preview.head_sha[:12]}-{tag}"
    )


def enqueue_teardown(queue: JobQueue, preview: Preview, reason: str, tag: str) -> bool:
    return queue.enqueue(TEARDOWN_JOB, preview.id, reason, job_id=f"teardown-{preview.id}-{tag}")


def request_teardown(queue: JobQueue, preview: Preview, reason: str, now: datetime) -> None:
    with database.atomic():
        preview.set_state(PreviewState.DELETING, now)
        Event.record(preview, "teardown", f"{reason}: teardown requested")
    enqueue_teardown(queue, preview, reason, str(int(now.timestamp())))


def expire(queue: JobQueue, now: datetime, dry_run: bool = False) -> list[int]:
    """Previews past their TTL (and not pinned) are torn down."""
    expired = list(Preview.expired(now))
    if not dry_run:
        for preview in expired:
            request_teardown(queue, preview, "TTL expired", now)
    return [p.id for p in expired]


def start_waiting(queue: JobQueue, settings: Settings, now: datetime, dry_run: bool = False) -> list[int]:
    """Start previews waiting for a slot, oldest first, as slots free up."""
    waiting = list(Preview.waiting())
    if not waiting:
        return []
    limit = settings.max_active_previews
    free = len(waiting) if limit is None else max(0, limit - Preview.active().count())
    started = waiting[:free]
    if not dry_run:
        for preview in started:
            preview.waiting_since = None
            preview.set_state(PreviewState.QUEUED, now)
            enqueue_deploy(queue, preview, f"slot-{int(now.timestamp())}")
    return [p.id for p in started]


def resume_stuck(queue: JobQueue, settings: Settings, now: datetime, dry_run: bool = False) -> list[int]:
    """Re-enqueue previews left in a transitional state by a worker that died."""
    stuck = list(Preview.stuck(now - stuck_after(settings)))
    if not dry_run:
        for preview in stuck:
            tag = f"resume-{int(now.timestamp())}"
            if preview.state == PreviewState.DELETING:
                enqueue_teardown(queue, preview, "resumed after a stalled teardown", tag)
            else:
                enqueue_deploy(queue, preview, tag)
            preview.updated_at = now  # one resume per stall
            preview.save()
            Event.record(preview, "resume", f"resumed: no progress since {preview.updated_at:%Y-%m-%d %H:%M} UTC")
    return [p.id for p in stuck]


@dataclass
class OrphanReport:
    deleted: list[str] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)


def collect_orphans(kube: Kube, now: datetime, dry_run: bool = False, grace: timedelta = ORPHAN_GRACE) -> OrphanReport:
    """Delete our namespaces that no live preview owns; mark live previews whose namespace vanished."""
    report = OrphanReport()
    namespaces = kube.list_namespaces(f"{LABEL_MANAGED_BY}={MANAGED_BY},environment=preview")
    if namespaces and not Preview.select().exists():
        raise SweepRefused("the database knows no previews but the cluster has preview namespaces: wrong DATABASE_URL?")
    seen = set()
    candidates = []
    for namespace in namespaces:
        meta = namespace.metadata
        seen.add(meta.name)
        if meta.deletion_timestamp:
            continue
        raw_id = (meta.labels or {}).get(LABEL_PREVIEW_ID, "")
        owner = Preview.get_or_none(Preview.id == int(raw_id)) if raw_id.isdigit() else None
        if owner is not None and owner.state != PreviewState.DELETED and owner.namespace == meta.name:
            continue
        created = meta.creation_timestamp.replace(tzinfo=None) if meta.creation_timestamp else now
        if now - created < grace:
            continue
        candidates.append(meta.name)
    if len(candidates) > MAX_ORPHANS_PER_PASS:
        raise SweepRefused(
            f"{len(candidates)} orphan namespaces in one pass (limit {MAX_ORPHANS_PER_PASS}); not deleting"
        )
    for name in candidates:
        report.deleted.append(name)
        if not dry_run:
            kube.delete_namespace(name)
            log.info("orphan namespace deleted namespace=%s", name)
    holding = Preview.select().where(
        Preview.state.in_((PreviewState.READY, PreviewState.FAILED)) & Preview.namespace.is_null(False)
    )
    for preview in holding:
        if preview.namespace in seen or now - preview.updated_at < grace:
            continue
        if kube.namespace_exists(preview.namespace):  # listed between our two reads
            continue
        report.vanished.append(preview.id)
        if not dry_run:
            preview.deployed_sha = None
            preview.set_state(PreviewState.DELETED, now)
            Event.record(preview, "drift", f"namespace {preview.namespace} vanished; marked deleted")
    return report


def run_pass(context: Services, now: datetime | None = None, dry_run: bool = False) -> dict[str, Any]:
    """One pass; returns what each step did (or its error). With dry_run nothing changes."""
    now = now or utcnow()
    queue, settings = context.queue, context.settings
    assert queue is not None
    steps: dict[str, Callable[[], Any]] = {
        "expired": lambda: expire(queue, now, dry_run),
        "started": lambda: start_waiting(queue, settings, now, dry_run),
        "resumed": lambda: resume_stuck(queue, settings, now, dry_run),
        "orphans": lambda: collect_orphans(context.kube, now, dry_run),
    }
    if not dry_run:
        steps = {"enqueued": lambda: intake.enqueue_pending(queue), **steps}
    summary: dict[str, Any] = {}
    for name, step in steps.items():
        try:
            with database.connection_context():
                summary[name] = step()
        except Exception as error:  # one failed step must not stop the others or the loop
            log.exception("scheduler step failed step=%s", name)
            summary[name] = f"error: {error}"
    return summary


def removed_counts(summary: dict[str, Any]) -> dict[str, int]:
    counts = {key: len(value) for key, value in summary.items() if isinstance(value, list)}
    orphans = summary.get("orphans")
    if isinstance(orphans, OrphanReport):
        counts["orphan_namespaces"], counts["vanished"] = len(orphans.deleted), len(orphans.vanished)
    return counts
