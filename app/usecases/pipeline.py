"""The preview use cases run by the worker: deploy a preview at a commit, tear it down.

Each step reloads state and checks that its commit is still the wanted one, so
a newer push supersedes an older run instead of racing it; everything applied
is idempotent, so a run killed half-way can simply run again.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from app.adapters.gitea import Gitea, GiteaError
from app.adapters.jobqueue import JobQueue, QueueUnavailable
from app.adapters.kube import Kube, job_state
from app.db import database, utcnow
from app.domain import credentials, manifests
from app.domain.naming import PreviewNames, image_repository, preview_names
from app.models import Deployment, Event, Preview, PreviewState
from app.settings import Settings
from app.usecases import reporting

log = logging.getLogger(__name__)

REPORT_JOB = "workers.jobs.report_preview"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

# The seed's progress steps.
PROGRESS = {"queued": 0, "build": 20, "deploy": 40, "configure": 60, "rollout": 70, "report": 90, "ready": 100}


@dataclass
class Services:
    settings: Settings
    kube: Kube
    gitea: Gitea | None = None
    queue: JobQueue | None = None


class Superseded(Exception):
    """A newer commit (or a teardown) took over this preview; stop quietly."""


class StepFailed(Exception):
    """The preview cannot be made ready at this commit; the message says why."""

    def __init__(self, phase: str, message: str, log_tail: str | None = None) -> None:
        super().__init__(message)
        self.phase = phase
        self.log_tail = log_tail


def names_for(settings: Settings, preview: Preview) -> PreviewNames:
    return preview_names(
        preview.repository.full_name, preview.target_key, preview.pr_number, preview.branch, settings.preview_domain
    )


def _reload(preview_id: int, sha: str) -> Preview:
    preview = Preview.get_by_id(preview_id)
    if preview.head_sha != sha or preview.state in (PreviewState.DELETING, PreviewState.DELETED):
        raise Superseded(f"preview {preview_id} now wants {preview.head_sha[:12]} ({preview.state})")
    return preview


@contextmanager
def _phase(preview: Preview, deployment: Deployment, phase: str, message: str) -> Iterator[None]:
    """Record the phase's start as an Event, and its duration on the Event and the Deployment row."""
    started = time.monotonic()
    event = Event.record(preview, phase, message, progress=PROGRESS.get(phase))
    yield
    elapsed_ms = int((time.monotonic() - started) * 1000)
    Event.update(duration_ms=elapsed_ms).where(Event.id == event.id).execute()
    deployment.timings = {**(deployment.timings or {}), phase: round(elapsed_ms / 1000, 3)}
    deployment.updated_at = utcnow()
    deployment.save()


def _report(services: Services, preview: Preview, password: str | None = None, detail: str | None = None) -> None:
    """Tell Gitea; if Gitea is down, leave it to a retried report job. Never fails the deploy."""
    if services.gitea is None:
        return
    try:
        reporting.report(services.gitea, services.settings, preview, password, detail)
    except GiteaError as error:
        log.warning("gitea report failed, will retry preview_id=%s error=%s", preview.id, error)
        if services.queue is not None:
            try:
                services.queue.enqueue(REPORT_JOB, preview.id, job_id=f"report-{preview.id}-{int(time.time())}")
            except QueueUnavailable:
                log.warning("could not queue the report retry preview_id=%s", preview.id)


def _set_state(services: Services, preview: Preview, state: str, detail: str | None = None) -> None:
    preview.set_state(state)
    _report(services, preview, detail=detail)


def _build(services: Services, preview: Preview, deployment: Deployment, spec: manifests.PreviewSpec) -> str:
    """Build the image at the preview's commit with kaniko; return it pinned by digest."""
    settings, kube = services.settings, services.kube
    repo_settings = preview.repository.settings or {}
    if repo_settings.get("image"):
        return str(repo_settings["image"])
    if not settings.preview_registry:
        raise StepFailed("build", "PREVIEW_REGISTRY is not set and the repository names no image to deploy")
    names = spec.names
    selector = f"{manifests.LABEL_PREVIEW_ID}={preview.id},{manifests.LABEL_COMPONENT}=build"
    failed_before = False
    for job in kube.list_jobs(settings.build_namespace, selector):
        if job.metadata.name != names.build_job(spec.head_sha):
            # An older commit's build: superseded, never reported as this PR's result.
            kube.delete_job(settings.build_namespace, job.metadata.name)
        elif job_state(job) == "failed":
            failed_before = True  # asked again for this commit: build it again

    repository = image_repository(settings.preview_registry, preview.repository.full_name)
    git_ref = f"refs/pull/{preview.pr_number}/head" if preview.pr_number is not None else f"refs/heads/{preview.branch}"
    build = manifests.BuildSpec(
        job_name=names.build_job(spec.head_sha),
        namespace=settings.build_namespace,
        clone_url=preview.repository.clone_url,
        git_ref=git_ref,
        destination=f"{repository}:{names.image_tag(spec.head_sha)}",
        cache_repository=f"{repository}/cache",
        dockerfile=str(repo_settings.get("dockerfile", "Dockerfile")),
        pod_labels=dict(repo_settings.get("build_pod_labels", {})),
    )
    kube.apply(manifests.build_namespace(settings))
    kube.replace_job(manifests.build_job(spec, build, settings), recreate=failed_before)
    outcome = kube.wait_for_job(settings.build_namespace, build.job_name, settings.build_timeout.total_seconds())
    _reload(preview.id, spec.head_sha)
    if outcome.state == "missing":
        raise Superseded(f"build job {build.job_name} was deleted")
    if outcome.state != "complete":
        tail = kube.pod_log_tail(settings.build_namespace, f"job-name={build.job_name}") or outcome.message
        why = "the build timed out" if outcome.state == "timeout" else f"the build failed ({outcome.reason or 'error'})"
        raise StepFailed("build", why, tail)
    if not _DIGEST.fullmatch(outcome.message):
        raise StepFailed("build", "the build finished without reporting an image digest")
    deployment.image = build.destination
    deployment.digest = outcome.message
    deployment.save()
    return f"{repository}@{outcome.message}"


def _password(services: Services, names: PreviewNames) -> str:
    """Keep the preview's password across pushes; make one on first deploy."""
    existing = services.kube.read_secret_data(names.namespace, names.auth_secret)
    if existing and existing.get("password"):
        return existing["password"]
    return credentials.new_password()


def _app_spec(preview: Preview, image: str) -> manifests.AppSpec:
    options = preview.repository.settings or {}
    return manifests.AppSpec(
        image=image,
        port=int(options.get("port", 8080)),
        health_path=str(options.get("health_path", "/")),
        env={str(k): str(v) for k, v in (options.get("env") or {}).items()},
        pod_labels={str(k): str(v) for k, v in (options.get("pod_labels") or {}).items()},
    )


def _spec(settings: Settings, preview: Preview, names: PreviewNames, now: datetime) -> manifests.PreviewSpec:
    return manifests.PreviewSpec(
        preview_id=preview.id,
        names=names,
        repository=preview.repository.full_name,
        branch=preview.branch,
        head_sha=preview.head_sha,
        created_at=preview.created_at,
        expires_at=now + settings.preview_ttl,
        ttl=settings.preview_ttl,
        pr_number=preview.pr_number,
        pr_url=preview.pr_url,
    )


def _wait_for_a_slot(services: Services, preview: Preview) -> bool:
    """Under MAX_ACTIVE_PREVIEWS, a preview that holds nothing yet waits in line. True when it must wait."""
    limit = services.settings.max_active_previews
    if limit is None or preview.deployed_sha is not None:
        return False
    others = Preview.active().where(Preview.id != preview.id).count()
    if others < limit:
        return False
    preview.waiting_since = preview.waiting_since or utcnow()
    preview.set_state(PreviewState.QUEUED)
    position = Preview.waiting().where(Preview.waiting_since <= preview.waiting_since).count()
    detail = f"waiting for a free slot ({limit} previews running), position {position}"
    Event.record(preview, "queued", detail, progress=0)
    _report(services, preview, detail=detail)
    return True


def deploy(services: Services, preview_id: int, sha: str) -> str:
    """Make the preview ready at `sha`. Returns ready, failed, waiting or superseded."""
    settings, kube = services.settings, services.kube
    try:
        preview = _reload(preview_id, sha)
        if _wait_for_a_slot(services, preview):
            return "waiting"
        names = names_for(settings, preview)
        now = utcnow()
        spec = _spec(settings, preview, names, now)
        preview.slug, preview.namespace, preview.url = names.slug, names.namespace, spec.url
        preview.credentials_ref = f"{names.namespace}/{names.auth_secret}"
        preview.save()
        deployment, _ = Deployment.get_or_create(preview=preview, head_sha=sha)
        deployment.status, deployment.failure_reason = "running", None
        deployment.save()

        _set_state(services, preview, PreviewState.BUILDING)
        with _phase(preview, deployment, "build", f"building {sha[:12]}"):
            image = _build(services, preview, deployment, spec)

        preview = _reload(preview_id, sha)
        _set_state(services, preview, PreviewState.DEPLOYING)
        with _phase(preview, deployment, "deploy", f"applying objects in {names.namespace}"):
            kube.wait_while_terminating(names.namespace, timeout=180)
            password = _password(services, names)
            objects = manifests.preview_objects(
                spec,
                _app_spec(preview, image),
                settings,
                credentials.htpasswd_line(credentials.USERNAME, password),
                credentials.USERNAME,
                password,
            )
            for obj in objects:
                kube.apply(obj)
        Event.record(preview, "configure", "objects applied", progress=PROGRESS["configure"])

        with _phase(preview, deployment, "rollout", "waiting for the app to become available"):
            outcome = kube.wait_for_rollout(names.namespace, names.app, settings.rollout_timeout.total_seconds())
        preview = _reload(preview_id, sha)
        if not outcome.ready:
            raise StepFailed("rollout", outcome.message or outcome.reason)

        with database.atomic():
            preview.deployed_sha = sha
            preview.expires_at = now + settings.preview_ttl
            preview.set_state(PreviewState.READY)
            deployment.status = "ready"
            deployment.save()
        with _phase(preview, deployment, "report", "reporting to Gitea"):
            _report(services, preview, password)
        Event.record(preview, "ready", f"ready at {preview.url}", progress=PROGRESS["ready"])
        return "ready"
    except Superseded as why:
        log.info("deploy superseded preview_id=%s sha=%s why=%s", preview_id, sha[:12], why)
        Deployment.update(status="superseded", updated_at=utcnow()).where(
            (Deployment.preview == preview_id) & (Deployment.head_sha == sha) & (Deployment.status == "running")
        ).execute()
        return "superseded"
    except StepFailed as failure:
        return _fail(services, preview_id, sha, failure)


def _fail(services: Services, preview_id: int, sha: str, failure: StepFailed) -> str:
    try:
        preview = _reload(preview_id, sha)
    except Superseded:
        return "superseded"
    with database.atomic():
        Deployment.update(
            status="failed",
            failure_reason=f"{failure.phase}: {failure}",
            updated_at=utcnow(),
            build_log_tail=(failure.log_tail or None) and failure.log_tail[-8000:],
        ).where((Deployment.preview == preview) & (Deployment.head_sha == sha)).execute()
        Event.record(preview, failure.phase, f"failed: {failure}")
        preview.set_state(PreviewState.FAILED)
    log.info("deploy failed preview_id=%s sha=%s phase=%s why=%s", preview_id, sha[:12], failure.phase, failure)
    _report(services, preview, detail=str(failure))
    return "failed"


def teardown(services: Services, preview_id: int, reason: str = "teardown requested") -> str:
    """Delete everything the preview used. Only on positive evidence: callers decide that."""
    settings, kube = services.settings, services.kube
    preview = Preview.get_by_id(preview_id)
    if preview.state != PreviewState.DELETING:
        return "superseded"  # reopened or pushed again since the teardown was asked for
    names = names_for(settings, preview)
    started = time.monotonic()
    selector = f"{manifests.LABEL_PREVIEW_ID}={preview.id},{manifests.LABEL_COMPONENT}=build"
    for job in kube.list_jobs(settings.build_namespace, selector):
        kube.delete_job(settings.build_namespace, job.metadata.name)
    kube.delete_namespace(preview.namespace or names.namespace)
    preview = Preview.get_by_id(preview_id)
    if preview.state != PreviewState.DELETING:
        return "superseded"
    preview.deployed_sha, preview.waiting_since = None, None
    preview.set_state(PreviewState.DELETED)
    Event.record(
        preview,
        "teardown",
        f"namespace {names.namespace} deleted ({reason})",
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    _report(services, preview, detail=reason)
    return "deleted"


def report_again(services: Services, preview_id: int) -> None:
    """The retried report job: publish the current state; a GiteaError makes RQ retry it."""
    if services.gitea is None:
        return
    preview = Preview.get_by_id(preview_id)
    password = None
    if services.settings.comment_password and preview.repository.private and preview.state == PreviewState.READY:
        names = names_for(services.settings, preview)
        password = (services.kube.read_secret_data(names.namespace, names.auth_secret) or {}).get("password")
    reporting.report(services.gitea, services.settings, preview, password)
