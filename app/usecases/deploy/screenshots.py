"""Screenshots of a ready preview in its PR comment, and what changed since the last ones.

Once a deploy is ready (with SCREENSHOT_IMAGE set), the screenshot job runs headless
Chromium as a Job in the preview's namespace (app/domain/k8s/screenshots.py) over the pages
its preview file names, at a desktop and a phone width. Each picture is compared
(app/domain/visual_diff.py) with the same page of the base branch's preview, when there is
one, else with the preview's own previous set: the share of changed pixels, and an overlay
that highlights them. The pictures and overlays go to the PR comment as attachments of it,
and the comment lists them (reporting.comment_body); a branch preview's set is only kept, for
the pull requests into that branch to be compared with.

Only the latest set of each preview is kept (in the database; the Gitea attachments of
the set before are removed). The Job is bounded (SCREENSHOT_TIMEOUT, its memory limit) and
whatever goes wrong here is an event on the preview, never a failed preview.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from app.db import database, utcnow
from app.domain import visual_diff
from app.domain.k8s import screenshots as job_spec
from app.domain.naming import SHORT_SHA
from app.domain.states import PreviewState
from app.models import Event, Preview, Screenshot
from app.settings import Settings
from app.usecases import jobs
from app.usecases.deploy import lease
from app.usecases.deploy.namespaces import names_for
from app.usecases.deploy.reporting import comment_marker
from app.usecases.ports import GiteaError, KubeError, Queue, QueueUnavailable, Services

log = logging.getLogger(__name__)

# Five pages at two widths, base64: far below this unless a page is a wall of noise.
MAX_LOG_BYTES = 24 * 1024 * 1024
# Seconds (one try each) the finished set waits for the preview's lease, held by a report.
LEASE_TRIES = 30


def wanted(settings: Settings, pages: tuple[str, ...]) -> bool:
    return bool(settings.screenshot_image and pages)


def enqueue(queue: Queue, preview_id: int, sha: str, pages: tuple[str, ...]) -> bool:
    """Queue the screenshots of the preview at `sha` (pages have no spaces: one argument)."""
    job_id = f"screenshots-{preview_id}-{sha[:12]}"
    try:
        return queue.enqueue(jobs.SCREENSHOT_JOB, preview_id, sha, " ".join(pages), job_id=job_id, keep_result=False)
    except QueueUnavailable:
        log.warning("screenshots not queued preview_id=%s: the queue is unreachable", preview_id)
        return False


def _showing(preview_id: int, sha: str) -> Preview | None:
    """The preview, if it still serves `sha` (ready, or asleep since)."""
    preview: Preview | None = Preview.get_or_none(Preview.id == preview_id)
    if preview is None or preview.state not in PreviewState.SERVING or preview.deployed_sha != sha:
        return None
    if not preview.namespace:
        return None
    return preview


def take(services: Services, preview_id: int, sha: str, pages: tuple[str, ...]) -> str:
    """The screenshot job: shown, taken (no comment to show them in), failed, moved on (a push
    or a teardown came first), deferred or not configured."""
    settings = services.settings
    if not wanted(settings, pages):
        return "not configured"
    preview = _showing(preview_id, sha)
    if preview is None:
        return "moved on"
    started = time.monotonic()
    try:
        with lease.hold(preview_id, settings.lease_ttl):
            if _showing(preview_id, sha) is None:
                return "moved on"
            services.kube.replace_job(_job(settings, preview, sha, pages), recreate=True)
    except lease.LeaseHeld:
        jobs.defer(services.queue, jobs.SCREENSHOT_JOB, preview_id, sha, " ".join(pages))
        return "deferred"
    except KubeError as error:
        return _failed(preview, f"the screenshot Job was refused: {error}")
    # Chromium works without the lease: a push or a teardown meanwhile is not held up by it.
    shots = _pictures(services, preview, sha, pages)
    if isinstance(shots, str):
        return shots
    return _keep(services, preview, sha, shots, int((time.monotonic() - started) * 1000))


def _job(settings: Settings, preview: Preview, sha: str, pages: tuple[str, ...]) -> dict[str, Any]:
    assert settings.screenshot_image is not None
    assert preview.namespace
    return job_spec.screenshot_job(
        preview.namespace,
        preview.id,
        sha,
        settings.screenshot_image,
        f"http://{names_for(settings, preview).app}",
        pages,
        int(settings.screenshot_timeout.total_seconds()),
    )


def _pictures(services: Services, preview: Preview, sha: str, pages: tuple[str, ...]) -> list[job_spec.Shot] | str:
    """The Job's pictures once it is done, or the job's result when there are none."""
    kube, name = services.kube, job_spec.job_name(sha)
    try:
        outcome = kube.wait_for_job(
            preview.namespace,
            name,
            services.settings.screenshot_timeout.total_seconds() + 30,
            should_stop=lambda: _showing(preview.id, sha) is None,
            # Not final: right after a rollout the old pod, still stopping, holds its share
            # of the quota for a while; the Job controller tries again until the deadline.
            single_pod=True,
        )
        if outcome.state == "stopped":
            kube.delete_job(preview.namespace, name)
            return "moved on"
    except KubeError as error:
        return _failed(preview, f"the screenshot Job could not be followed: {error}")
    if outcome.state != "complete":
        return _failed(preview, f"the screenshot Job did not finish ({outcome.message or outcome.reason})")
    shots = _checked(job_spec.read_log(kube.pod_log(preview.namespace, f"job-name={name}", MAX_LOG_BYTES), pages))
    if not any(shot.png for shot in shots):
        return _failed(preview, "Chromium gave no picture of any page")
    return shots


def _keep(services: Services, preview: Preview, sha: str, shots: list[job_spec.Shot], took_ms: int) -> str:
    """keep_and_show under the preview's lease, while it still shows `sha`."""
    for _ in range(LEASE_TRIES):
        try:
            with lease.hold(preview.id, services.settings.lease_ttl):
                if _showing(preview.id, sha) is None:
                    return "moved on"
                return keep_and_show(services, preview, sha, shots, took_ms)
        except lease.LeaseHeld:
            # A report holds it for a moment; a deploy or a sleep for longer, and then the
            # preview no longer shows `sha`: a new deploy brings its own screenshots.
            if _showing(preview.id, sha) is None:
                return "moved on"
            time.sleep(1)
    return _failed(preview, "the preview stayed busy: the pictures were not kept")


def _failed(preview: Preview, why: str) -> str:
    Event.record(preview, "screenshots", f"no screenshots: {why}")
    log.info("screenshots failed preview_id=%s why=%s", preview.id, why)
    return "failed"


def _checked(shots: Iterable[job_spec.Shot]) -> list[job_spec.Shot]:
    """The Job's pictures, each a PNG of its viewport's size or none."""
    checked = []
    for shot in shots:
        png = shot.png
        if png is not None:
            try:
                png = visual_diff.checked_png(png, job_spec.VIEWPORTS[shot.viewport])
            except visual_diff.NotAScreenshot as error:
                log.warning("screenshot dropped page=%s viewport=%s: %s", shot.page, shot.viewport, error)
                png = None
        checked.append(job_spec.Shot(shot.page, shot.viewport, png))
    return checked


def _baseline(services: Services, preview: Preview, sha: str) -> tuple[list[Screenshot], str | None]:
    """What to compare with, and how to say it: the base branch's preview's latest set for a
    PR (when that branch has one), else this preview's own set before `sha`."""
    if preview.pr_number is not None and services.gitea.configured:
        try:
            pull = services.gitea.pull_request(preview.repository.full_name, preview.pr_number) or {}
        except GiteaError as error:
            log.info("base branch unknown preview_id=%s error=%s", preview.id, error)
            pull = {}
        base = (pull.get("base") or {}).get("ref")
        branch_preview = (
            Preview.get_or_none(
                (Preview.repository == preview.repository) & Preview.pr_number.is_null() & (Preview.branch == base)
            )
            if isinstance(base, str)
            else None
        )
        if branch_preview is not None:
            rows = list(Screenshot.select().where(Screenshot.preview == branch_preview))
            if rows:
                return rows, f"the {base} branch's preview"
    own = list(Screenshot.select().where((Screenshot.preview == preview) & (Screenshot.sha != sha)))
    return own, "the previous commit"


def keep_and_show(
    services: Services, preview: Preview, sha: str, shots: list[job_spec.Shot], took_ms: int | None = None
) -> str:
    """Compare a new set with its baseline, keep it in place of the preview's set before,
    attach it to the PR comment and make the comment's report due: shown or taken. The
    caller holds the preview's lease; `took_ms`: how long the Job took, for the event."""
    baseline, described = _baseline(services, preview, sha)
    before = {(row.page, row.viewport): row for row in baseline if row.png is not None}
    earlier = list(Screenshot.select().where(Screenshot.preview == preview))
    rows, overlays = [], {}
    for shot in shots:
        row = Screenshot(preview=preview, sha=sha, page=shot.page, viewport=shot.viewport, png=shot.png)
        old = before.get((shot.page, shot.viewport))
        if shot.png is not None and old is not None:
            comparison = visual_diff.compare(bytes(old.png), shot.png)
            row.changed_share, row.compared_sha, row.compared_with = comparison.changed_share, old.sha, described
            if comparison.overlay_png:
                overlays[(shot.page, shot.viewport)] = comparison.overlay_png
        rows.append(row)
    with database.atomic():
        # A set taken again at the same commit replaces the one before (its attachments go below).
        Screenshot.delete().where((Screenshot.preview == preview) & (Screenshot.sha == sha)).execute()
        for row in rows:
            row.save(force_insert=True)
    shown = _attach(services, preview, sha, rows, overlays, earlier)
    Screenshot.delete().where((Screenshot.preview == preview) & (Screenshot.sha != sha)).execute()
    Event.record(preview, "screenshots", _summary(rows, described), duration_ms=took_ms)
    if shown:
        # The comment lists them at its next report (with the password, if it shows one).
        Preview.update(**Preview.report_due_fields(utcnow(), preview.report_detail)).where(
            (Preview.id == preview.id) & (Preview.deployed_sha == sha)
        ).execute()
        again = Preview.get_by_id(preview.id)
        with contextlib.suppress(QueueUnavailable):  # else the scheduler's `reported` step sends it
            jobs.enqueue_report(services.queue, preview.id, again.report_version, again.report_attempts)
    return "shown" if shown else "taken"


def _attach(
    services: Services,
    preview: Preview,
    sha: str,
    rows: list[Screenshot],
    overlays: dict[tuple[str, str], bytes],
    earlier: list[Screenshot],
) -> bool:
    """Upload the pictures (and overlays) to the PR comment, then remove the `earlier` sets'.
    False when there is no comment to attach to (a branch preview, or no Gitea)."""
    gitea = services.gitea
    if preview.pr_number is None or not gitea.configured:
        return False
    repository = preview.repository.full_name
    try:
        comment = gitea.find_comment(repository, preview.pr_number, comment_marker(preview))
        if comment is None:
            Event.record(preview, "screenshots", "taken; not shown: the PR comment is not there yet")
            return False
        comment_id = int(comment["id"])
        for row in rows:
            if row.png is None:
                continue
            stem = f"{row.viewport}{_file_part(row.page)}-{sha[:SHORT_SHA]}"
            attachment = gitea.add_comment_attachment(repository, comment_id, f"{stem}.png", bytes(row.png))
            row.attachment_id, row.attachment_url = attachment["id"], attachment["browser_download_url"]
            if overlay := overlays.get((row.page, row.viewport)):
                marked = gitea.add_comment_attachment(repository, comment_id, f"{stem}-changes.png", overlay)
                row.overlay_attachment_id, row.overlay_url = marked["id"], marked["browser_download_url"]
            row.save()
        for old in earlier:
            for attachment_id in (old.attachment_id, old.overlay_attachment_id):
                if attachment_id:
                    gitea.delete_comment_attachment(repository, comment_id, attachment_id)
    except GiteaError as error:
        Event.record(preview, "screenshots", f"taken; not shown: Gitea said {error}")
        return any(row.attachment_url for row in rows)
    return True


def _file_part(page: str) -> str:
    """A page path as part of a file name: /login/reset -> -login-reset, / -> nothing."""
    cleaned = "".join(c if c.isalnum() else "-" for c in page).strip("-")
    return f"-{cleaned[:60]}" if cleaned else ""


def _summary(rows: list[Screenshot], described: str | None) -> str:
    taken = [row for row in rows if row.png is not None]
    compared = [row for row in taken if row.changed_share is not None]
    text = f"{len(taken)} of {len(rows)} screenshots taken"
    if compared:
        most = max(compared, key=lambda row: row.changed_share or 0.0)
        text += f"; up to {100 * (most.changed_share or 0.0):.1f}% changed since {described} ({most.page})"
    return text
