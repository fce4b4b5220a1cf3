"""Previews nobody visits go to sleep; the first visit with the preview's credentials wakes them.

A ready preview left unvisited for its idle time (PREVIEW_IDLE_AFTER, or less if its
preview file asks; visits are read from the data plane, app/usecases/operations/visits.py)
sleeps: its app Service is given the wake page as an extra endpoint (app/domain/k8s/wake.py),
then its Deployments and StatefulSets scale to zero (volumes kept), and it gives back its
slot (MAX_ACTIVE_PREVIEWS) and ends its stretch of use. Its route, and the password in front
of it, are not touched; Gitea's status stays success, the comment says it is asleep.

A visit through that route reaches the web's wake page (app/web/wake.py): with the
preview's credentials, a GET from a browser (not a HEAD, not a link-preview bot) asks for a
wake. The wake job takes a slot (or says on the page where it is in line), scales the
workloads back, waits for the app, and removes the wake page's endpoint again.

Both jobs hold the preview's lease and check its state before each change, so a push that
came in meanwhile (a deploy, which wakes it as well) wins; both are idempotent, and the
scheduler queues them again for a preview a dead worker left half-way.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from app.db import database, utcnow
from app.domain.k8s import wake
from app.domain.k8s.labels import LABEL_PREVIEW_ID
from app.domain.states import PreviewState
from app.models import Event, Preview
from app.settings import Settings
from app.usecases import jobs
from app.usecases.deploy import capacity, lease, reporting, usage
from app.usecases.deploy.namespaces import names_for
from app.usecases.ports import Cluster, Queue, QueueUnavailable, Services

log = logging.getLogger(__name__)

# A wake asked for this long ago and not done (a worker died, or no slot was free): asked again.
WAKE_RETRY = timedelta(seconds=30)
# Jobs of the same kind for the same preview within this many seconds share one id.
JOB_WINDOW_SECONDS = 10


def idle_since(preview: Preview) -> datetime | None:
    """Since when nobody visited a ready preview: its last visit, or when it became ready."""
    moments = [moment for moment in (preview.ready_since, preview.last_visit_at) if moment is not None]
    return max(moments) if moments else None


def is_idle(preview: Preview, now: datetime) -> bool:
    since = idle_since(preview)
    if preview.idle_after_seconds is None or since is None:
        return False
    return now - since >= timedelta(seconds=preview.idle_after_seconds)


def _enqueue(queue: Queue, job: str, preview_id: int, now: datetime) -> bool:
    window = int(now.timestamp() // JOB_WINDOW_SECONDS)
    kind = job.rsplit(".", 1)[-1]
    return queue.enqueue(job, preview_id, job_id=f"{kind}-{preview_id}-{window}", keep_result=False)


def endpoint_text(settings: Settings) -> str | None:
    return f"{settings.wake_endpoint[0]}:{settings.wake_endpoint[1]}" if settings.wake_endpoint else None


def send_to_sleep(queue: Queue, settings: Settings, now: datetime, dry_run: bool = False) -> list[int]:
    """The scheduler's step: a sleep job for each idle ready preview, and for each sleeping one
    whose sleep was cut short (it still holds its slot) or whose wake route leads to another
    WAKE_ENDPOINT than today's (the job applies it again). Not for those asked to wake."""
    ready = Preview.select(Preview.id, Preview.ready_since, Preview.last_visit_at, Preview.idle_after_seconds).where(
        (Preview.state == PreviewState.READY) & Preview.idle_after_seconds.is_null(False)
    )
    current = endpoint_text(settings)
    unfinished = Preview.select(Preview.id).where(
        (Preview.state == PreviewState.SLEEPING)
        & Preview.wake_requested_at.is_null()
        & (
            (Preview.holds_slot == True)  # noqa: E712
            | Preview.wake_endpoint.is_null()
            | (Preview.wake_endpoint != current)
        )
    )
    due = sorted({p.id for p in ready if is_idle(p, now)} | {p.id for p in unfinished})
    if not dry_run:
        for preview_id in due:
            _enqueue(queue, jobs.SLEEP_JOB, preview_id, now)
    return due


def resume_wakes(queue: Queue, settings: Settings, now: datetime, dry_run: bool = False) -> list[int]:
    """The scheduler's step: wakes asked for a while ago and not done are asked again; with
    sleeping switched off (no way to read visits or to reach the wake page), every sleeping
    preview is woken."""
    sleeping_now = Preview.state == PreviewState.SLEEPING
    asked = Preview.wake_requested_at <= now - WAKE_RETRY
    stale = Preview.select(Preview.id).where(sleeping_now & asked if settings.sleeping_on else sleeping_now)
    due = [p.id for p in stale]
    if not dry_run:
        for preview_id in due:
            _enqueue(queue, jobs.WAKE_JOB, preview_id, now)
    return due


def _selector(preview_id: int) -> str:
    return f"{LABEL_PREVIEW_ID}={preview_id}"


def put_to_sleep(services: Services, preview_id: int) -> str:
    """The sleep job: asleep, visited (not idle after all), deferred (another worker holds
    it), or not serving (it moved on: a push, a teardown)."""
    settings, kube = services.settings, services.kube
    if not settings.sleeping_on or settings.wake_endpoint is None:
        return "not configured"
    try:
        with lease.hold(preview_id, settings.lease_ttl) as held:
            preview = Preview.get_or_none(Preview.id == preview_id)
            if preview is None or preview.state not in PreviewState.SERVING or not preview.namespace:
                return "not serving"
            now = utcnow()
            if preview.state == PreviewState.READY:
                if not is_idle(preview, now):
                    return "visited"
                if not Preview.change(
                    preview_id,
                    sha=preview.head_sha,
                    states=(PreviewState.READY,),
                    owner=held.owner,
                    state=PreviewState.SLEEPING,
                    slept_at=now,
                    wake_requested_at=None,
                ):
                    return "not serving"
                idle = int((now - (idle_since(preview) or now)).total_seconds() // 60)
                Event.record(preview, "sleep", f"asleep after {idle} min without a visit; wakes on the next")
            names = names_for(settings, preview)
            address, port = settings.wake_endpoint
            # The wake page first, then the app goes: a visitor never finds nothing there.
            kube.apply(wake.wake_slice(preview.namespace, names.app, preview_id, address, port))
            Preview.update(wake_endpoint=endpoint_text(settings)).where(Preview.id == preview_id).execute()
            kube.scale_to_zero(preview.namespace, _selector(preview_id), wake.AWAKE_REPLICAS)
            with database.atomic():
                released = (
                    Preview.update(holds_slot=False)
                    .where(
                        (Preview.id == preview_id)
                        & (Preview.state == PreviewState.SLEEPING)
                        & (Preview.holds_slot == True)  # noqa: E712
                    )
                    .execute()
                )
                if released:
                    usage.stop([preview_id], now)
            reporting.tell(services, Preview.get_by_id(preview_id))
            log.info("preview asleep preview_id=%s", preview_id)
            return "asleep"
    except lease.LeaseHeld:
        return "deferred"  # the scheduler's next pass asks again


def wake_up(services: Services, preview_id: int) -> str:
    """The wake job: awake, waiting (no free slot), failed (the app did not come back),
    deferred, or not sleeping."""
    settings, kube = services.settings, services.kube
    try:
        with lease.hold(preview_id, settings.lease_ttl) as held:
            preview = Preview.get_or_none(Preview.id == preview_id)
            if preview is None or preview.state != PreviewState.SLEEPING or not preview.namespace:
                return "not sleeping"
            if (position := capacity.claim_slot(settings, preview_id, utcnow())) is not None:
                limit = settings.max_active_previews
                Event.record(
                    preview, "wake", f"waiting for a free slot ({limit} previews running), position {position}"
                )
                return "waiting"
            Event.record(preview, "wake", "waking up")
            names = names_for(settings, preview)
            kube.scale_back(preview.namespace, _selector(preview_id), wake.AWAKE_REPLICAS)

            def moved_on() -> bool:
                found = Preview.get_or_none(Preview.id == preview_id)
                return held.lost or found is None or found.state != PreviewState.SLEEPING

            outcome = kube.wait_for_rollout(
                preview.namespace, names.app, settings.rollout_timeout.total_seconds(), should_stop=moved_on
            )
            if moved_on():
                return "not sleeping"  # a push's deploy or a teardown took over
            if not outcome.ready:
                why = f"did not wake up: {outcome.message or outcome.reason}"
                Event.record(preview, "wake", why)
                Preview.change(
                    preview_id,
                    states=(PreviewState.SLEEPING,),
                    owner=held.owner,
                    state=PreviewState.FAILED,
                    report_detail=why,
                    expires_at=utcnow() + settings.failed_preview_ttl,
                )
                reporting.tell(services, Preview.get_by_id(preview_id))
                return "failed"
            kube.delete_object("discovery.k8s.io/v1", "EndpointSlice", preview.namespace, wake.WAKE_SLICE)
            if not Preview.change(
                preview_id,
                states=(PreviewState.SLEEPING,),
                owner=held.owner,
                state=PreviewState.READY,
                slept_at=None,
                wake_endpoint=None,
                wake_requested_at=None,
                ready_since=utcnow(),
            ):
                return "not sleeping"
            Event.record(preview, "ready", f"awake at {preview.url}")
            reporting.tell(services, Preview.get_by_id(preview_id))
            return "awake"
    except lease.LeaseHeld:
        return "deferred"  # its holder is waking it, or a deploy is under way


def ask_to_wake(queue: Queue, preview: Preview, now: datetime) -> bool:
    """A visitor with the preview's credentials is on the wake page: note it and queue the
    wake (again, at most once a window). False when the queue cannot be reached (the
    scheduler asks again)."""
    Preview.update(wake_requested_at=now).where(
        (Preview.id == preview.id) & (Preview.state == PreviewState.SLEEPING) & Preview.wake_requested_at.is_null()
    ).execute()
    try:
        _enqueue(queue, jobs.WAKE_JOB, preview.id, now)
    except QueueUnavailable:
        return False
    return True


def remove_wake_route(kube: Cluster, preview: Preview) -> None:
    """A deploy that found the preview asleep: its app is available again, the wake page goes."""
    if preview.slept_at is not None and preview.namespace:
        kube.delete_object("discovery.k8s.io/v1", "EndpointSlice", preview.namespace, wake.WAKE_SLICE)
