"""Tearing a preview down: its builds, its database, its namespace, then Gitea is told.

Only on positive evidence (the callers decide that: a close Gitea confirms, a TTL, a delete).
Like a deploy it holds the preview's lease, and before each destructive step it checks that the
preview is still to be torn down, and by this worker.
"""

from __future__ import annotations

import logging
import time

from app.db import utcnow
from app.domain.k8s.labels import LABEL_COMPONENT, LABEL_PREVIEW_ID
from app.domain.states import PreviewState
from app.models import Event, Preview, Screenshot
from app.usecases import jobs
from app.usecases.deploy import capacity, lease, preview_database, reporting, usage
from app.usecases.deploy.namespaces import names_for, ours_or_free
from app.usecases.jobs import TEARDOWN_JOB
from app.usecases.ports import Services, SqlAdminError

log = logging.getLogger(__name__)


def teardown(services: Services, preview_id: int, reason: str = "teardown requested") -> str:
    """Delete everything the preview used. Only on positive evidence: callers decide that."""
    preview = Preview.get_or_none(Preview.id == preview_id)
    if preview is None or preview.state != PreviewState.DELETING:
        return "superseded"  # reopened or pushed again since the teardown was asked for
    try:
        with lease.hold(preview_id, services.settings.lease_ttl) as held:
            return remove(services, held, preview_id, reason)
    except lease.LeaseHeld:
        jobs.defer(services.queue, TEARDOWN_JOB, preview_id, reason)
        return "deferred"


def _still_tearing_down(held: lease.Lease, preview_id: int) -> bool:
    """Asked right before each destructive step: the preview is still to be torn down, and by
    this worker (a reopen or a push wants it again; a lapsed lease may be someone else's)."""
    if held.lost:
        return False
    preview = Preview.get_or_none(Preview.id == preview_id)
    return preview is not None and preview.state == PreviewState.DELETING and preview.lease_owner == held.owner


def remove(services: Services, held: lease.Lease, preview_id: int, reason: str) -> str:
    """The teardown itself, under a lease the caller holds (a deploy whose preview file switched
    the preview off holds it already)."""
    settings, kube = services.settings, services.kube
    preview = Preview.get_by_id(preview_id)
    names = names_for(settings, preview)
    started = time.monotonic()

    def stop() -> str:
        Event.record(preview, "teardown", "teardown stopped: the preview is wanted again, or no longer this worker's")
        return "superseded"

    if not _still_tearing_down(held, preview_id):
        return stop()
    selector = f"{LABEL_PREVIEW_ID}={preview.id},{LABEL_COMPONENT}=build"
    for job in kube.list_jobs(settings.build_namespace, selector):
        kube.delete_job(settings.build_namespace, job.name)
    namespace = preview.namespace or names.namespace
    if not _still_tearing_down(held, preview_id):
        return stop()
    try:
        preview_database.release(services.shared_databases(settings), preview)
    except SqlAdminError as error:
        # Kept as it is, namespace included, and retried: a database is never left without its record.
        Event.record(preview, "teardown", f"the database could not be dropped: {error}")
        raise
    # What is removed is recorded as removed at once: a reopen now gets a new, seeded database.
    preview_database.forget_dropped(preview)
    if not _still_tearing_down(held, preview_id):
        return stop()
    if ours_or_free(kube, namespace, preview_id):
        kube.delete_namespace(namespace)
        # Whatever ran there (an in-namespace database too) is gone with it.
        Preview.update(deployed_sha=None, **preview_database.FORGOTTEN).where(Preview.id == preview_id).execute()
    else:
        log.warning(
            "teardown left a namespace that is not this preview's preview_id=%s namespace=%s", preview_id, namespace
        )
        Event.record(preview, "teardown", f"namespace {namespace} is not this preview's: left alone")
    gone = Preview.change(
        preview_id,
        states=(PreviewState.DELETING,),
        owner=held.owner,
        state=PreviewState.DELETED,
        deployed_sha=None,
        waiting_since=None,
        budget_held_since=None,
        holds_slot=False,
        report_detail=reason,
        **preview_database.FORGOTTEN,
    )
    if not gone:
        return "superseded"
    usage.stop([preview_id], utcnow())
    # Its pictures go too (the comment's attachments stay, with the comment they belong to).
    Screenshot.delete().where(Screenshot.preview == preview_id).execute()
    preview = Preview.get_by_id(preview_id)
    Event.record(
        preview,
        "teardown",
        f"namespace {names.namespace} deleted ({reason})",
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    reporting.tell(services, preview)
    # A slot is free: the next preview in line starts now, not at the scheduler's next pass.
    capacity.start_waiting(services.queue, settings, utcnow())
    return "deleted"
