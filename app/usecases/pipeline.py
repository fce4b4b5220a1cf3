"""The preview use cases run by the worker: deploy a preview at a commit, tear it down.

One worker acts on a preview at a time: each run holds the preview's lease
(app/usecases/lease.py), and a job that finds it held comes back later. Every
change of the preview's row is conditional on what the run believed (its
commit, its state, its lease), so a webhook that recorded a newer commit
meanwhile is never undone: the run notices at its next check and stops as
superseded. Everything applied is idempotent, so a run killed half-way can
simply run again.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.adapters import sql_admin
from app.adapters.gitea import GiteaError
from app.adapters.kube import Kube
from app.adapters.sql_admin import SqlAdminError
from app.db import database, utcnow
from app.domain import credentials, manifests, naming, routing
from app.domain.naming import PreviewNames, image_repository, preview_names
from app.domain.preview_file import PreviewFileError
from app.models import Deployment, Event, Preview, PreviewState
from app.runtime import DEPLOY_JOB, REPORT_JOB, TEARDOWN_JOB, Services
from app.settings import Settings
from app.usecases import capacity, jobs, lease, preview_config, preview_database, reporting, trust
from app.usecases.preview_config import PreviewConfig

log = logging.getLogger(__name__)

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

# The seed's progress steps.
PROGRESS = {
    "queued": 0,
    "build": 20,
    "deploy": 40,
    "database": 50,
    "configure": 60,
    "rollout": 70,
    "report": 90,
    "ready": 100,
}


class Superseded(Exception):
    """A newer commit (or a teardown) took over this preview, or the lease was lost; stop quietly."""


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


def _wants(preview: Preview | None, sha: str) -> bool:
    """The preview still asks for a deploy of `sha` that has not concluded."""
    return preview is not None and preview.head_sha == sha and preview.state in PreviewState.DEPLOYING_STATES


@dataclass
class _Run:
    """One worker's deploy of one preview at one commit, under the preview's lease."""

    services: Services
    lease: lease.Lease
    preview_id: int
    sha: str

    def stopped(self) -> bool:
        """Asked between waits: is this run's work still wanted, by the lease's holder?"""
        return self.lease.lost or not _wants(Preview.get_or_none(Preview.id == self.preview_id), self.sha)

    def check(self) -> Preview:
        """The preview as it is now; Superseded when this run should stop."""
        preview = Preview.get_or_none(Preview.id == self.preview_id)
        if self.lease.lost or preview is None or not _wants(preview, self.sha):
            raise Superseded(f"preview {self.preview_id} no longer wants {self.sha[:12]} from this worker")
        return preview

    def move(self, state: str, also: Any = None, **fields: Any) -> Preview:
        """Change the preview's state, only if it is still this run's to change (and `also` holds)."""
        changed = Preview.change(
            self.preview_id,
            sha=self.sha,
            states=PreviewState.DEPLOYING_STATES,
            owner=self.lease.owner,
            also=also,
            state=state,
            **fields,
        )
        if not changed:
            raise Superseded(f"preview {self.preview_id} moved on before it could become {state}")
        return Preview.get_by_id(self.preview_id)


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
            jobs.enqueue_report(services.queue, preview.id)


def _build(
    run: _Run, preview: Preview, deployment: Deployment, spec: manifests.PreviewSpec, config: PreviewConfig
) -> str:
    """The image to deploy: the configured one, or the preview's commit built with kaniko, pinned by digest."""
    if config.image:
        return config.image
    git_ref = f"refs/pull/{preview.pr_number}/head" if preview.pr_number is not None else f"refs/heads/{preview.branch}"
    destination, digest = _build_commit(run, preview, spec, config, spec.head_sha, git_ref, drop_older=True)
    deployment.image = destination
    deployment.digest = digest
    deployment.save()
    return f"{destination.rsplit(':', 1)[0]}@{digest}"


def _build_commit(
    run: _Run,
    preview: Preview,
    spec: manifests.PreviewSpec,
    config: PreviewConfig,
    sha: str,
    git_ref: str,
    drop_older: bool = False,
) -> tuple[str, str]:
    """Build commit `sha` (reachable from `git_ref`) with kaniko; return its tag and digest."""
    settings, kube = run.services.settings, run.services.kube
    if not settings.preview_registry:
        raise StepFailed("build", "PREVIEW_REGISTRY is not set and the repository names no image to deploy")
    names = spec.names
    selector = f"{manifests.LABEL_PREVIEW_ID}={preview.id},{manifests.LABEL_COMPONENT}=build"
    failed_before = False
    for job in kube.list_jobs(settings.build_namespace, selector):
        if job.name == names.build_job(sha):
            failed_before = job.state == "failed"  # asked again for this commit: build it again
        elif drop_older:
            # An older commit's build: superseded, never reported as this PR's result.
            kube.delete_job(settings.build_namespace, job.name)

    repository = image_repository(settings.preview_registry, preview.repository.full_name)
    own_secret = naming.registry_secret(preview.repository.full_name)
    registry_secret = (
        own_secret
        if kube.read_secret_data(settings.build_namespace, own_secret) is not None
        else manifests.REGISTRY_CREDENTIALS_SECRET
    )
    build = manifests.BuildSpec(
        job_name=names.build_job(sha),
        namespace=settings.build_namespace,
        clone_url=_clone_url(settings, preview),
        git_ref=git_ref,
        destination=f"{repository}:{names.image_tag(sha)}",
        cache_repository=f"{repository}/cache",
        dockerfile=config.build.dockerfile,
        context=config.build.context,
        target=config.build.target,
        build_args=config.build.args,
        pod_labels=config.build_pod_labels,
        registry_secret=registry_secret,
    )
    Event.record(preview, "registry", f"pushing {sha[:12]} to {repository} with the Secret {registry_secret}")
    for build_object in (manifests.build_namespace, manifests.build_quota, manifests.build_network_policy):
        kube.apply(build_object(settings))
    kube.replace_job(manifests.build_job(spec, build, settings, sha), recreate=failed_before)
    outcome = kube.wait_for_job(
        settings.build_namespace, build.job_name, settings.build_timeout.total_seconds(), should_stop=run.stopped
    )
    run.check()
    if outcome.state in ("missing", "stopped"):
        raise Superseded(f"build job {build.job_name} was deleted")
    if outcome.state != "complete":
        tail = kube.pod_log_tail(settings.build_namespace, f"job-name={build.job_name}") or outcome.message
        why = "the build timed out" if outcome.state == "timeout" else f"the build failed ({outcome.reason or 'error'})"
        raise StepFailed("build", why, tail)
    if not _DIGEST.fullmatch(outcome.message):
        raise StepFailed("build", "the build finished without reporting an image digest")
    return build.destination, outcome.message


def _base_image(
    run: _Run, preview: Preview, spec: manifests.PreviewSpec, engine: str
) -> Callable[[], preview_database.BaseImage | None]:
    """For a template database: the commit the PR branched from, its image (built with the base's
    own preview file) and the base file's migrate and seed commands. Never the PR's: a template
    is shared by every PR of that base, so no PR may choose what goes into it."""

    def find() -> preview_database.BaseImage | None:
        gitea, settings = run.services.gitea, run.services.settings
        if gitea is None or preview.pr_number is None:
            return None
        repository = preview.repository.full_name
        pull = gitea.pull_request(repository, preview.pr_number) or {}
        base_sha, base_ref = pull.get("merge_base"), (pull.get("base") or {}).get("ref")
        if not base_sha or not base_ref:
            return None
        try:
            base_file = preview_config.read_file(gitea, settings, repository, str(base_sha))
        except PreviewFileError:
            return None  # the base's own file is broken: no template from it
        wanted = base_file.database if base_file is not None else None
        if wanted is None or wanted.engine != engine or not (wanted.migrate or wanted.seed):
            return None
        base = preview_config.resolve(preview.repository.settings, base_file)
        if base.image:
            image = base.image
        else:
            destination, digest = _build_commit(run, preview, spec, base, str(base_sha), f"refs/heads/{base_ref}")
            image = f"{destination.rsplit(':', 1)[0]}@{digest}"
        return preview_database.BaseImage(str(base_sha), image, wanted.migrate, wanted.seed)

    return find


def _clone_url(settings: Settings, preview: Preview) -> str:
    """Where the build fetches from: our Gitea, never a URL a webhook payload named."""
    if settings.gitea_url:
        return f"{settings.gitea_url.rstrip('/')}/{preview.repository.full_name}.git"
    return str(preview.repository.clone_url)


def _password(services: Services, names: PreviewNames) -> str:
    """Keep the preview's password across pushes; make one on first deploy."""
    existing = services.kube.read_secret_data(names.namespace, names.auth_secret)
    if existing and existing.get("password"):
        return existing["password"]
    return credentials.new_password()


def _app_spec(config: PreviewConfig, image: str, env_secret: str | None = None) -> manifests.AppSpec:
    return manifests.AppSpec(
        image=image,
        port=config.port,
        health_path=config.health_path,
        env=config.env,
        pod_labels=config.pod_labels,
        replicas=config.replicas,
        requests=config.requests,
        limits=config.limits,
        env_secret=env_secret,
        services=tuple(manifests.ExtraServiceSpec(s.name, s.image, s.port, s.env) for s in config.services),
    )


def _spec(
    settings: Settings, preview: Preview, names: PreviewNames, now: datetime, config: PreviewConfig
) -> manifests.PreviewSpec:
    ttl = config.ttl or settings.preview_ttl
    return manifests.PreviewSpec(
        preview_id=preview.id,
        names=names,
        repository=preview.repository.full_name,
        branch=preview.branch,
        head_sha=preview.head_sha,
        created_at=preview.created_at,
        expires_at=now + ttl,
        ttl=ttl,
        pr_number=preview.pr_number,
        pr_url=preview.pr_url,
    )


def _configuration(services: Services, preview: Preview) -> PreviewConfig:
    """The repository's settings and its preview file at the commit; StepFailed for an invalid file."""
    try:
        found = preview_config.read_file(
            services.gitea, services.settings, preview.repository.full_name, preview.head_sha
        )
    except PreviewFileError as error:
        raise StepFailed("config", str(error)) from None
    return preview_config.resolve(preview.repository.settings, found)


def _run_job(run: _Run, namespace: str, job: dict[str, Any], phase: str) -> None:
    """Run a migrate or seed Job to completion; StepFailed with its output's tail otherwise."""
    kube, settings = run.services.kube, run.services.settings
    name = job["metadata"]["name"]
    selector = f"{manifests.LABEL_PREVIEW_ID}={run.preview_id},{manifests.LABEL_COMPONENT}={phase}"
    failed_before = any(j.name == name and j.state == "failed" for j in kube.list_jobs(namespace, selector))
    kube.replace_job(job, recreate=failed_before)
    outcome = kube.wait_for_job(namespace, name, settings.rollout_timeout.total_seconds(), should_stop=run.stopped)
    run.check()
    if outcome.state in ("missing", "stopped"):
        raise Superseded(f"{phase} job {name} was deleted")
    if outcome.state != "complete":
        tail = kube.pod_log_tail(namespace, f"job-name={name}") or outcome.message
        last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
        why = f"the {phase} command timed out" if outcome.state == "timeout" else f"the {phase} command failed"
        raise StepFailed(phase, f"{why}: {last[:100]}" if last else why, tail)


def _ours_or_free(kube: Kube, namespace: str, preview_id: int) -> bool:
    """Before writing into or deleting a namespace: it does not exist, or it carries this preview's id."""
    labels = kube.namespace_labels(namespace)
    return labels is None or labels.get(manifests.LABEL_PREVIEW_ID) == str(preview_id)


def deploy(services: Services, preview_id: int, sha: str) -> str:
    """Make the preview ready at `sha`. Returns ready, failed, waiting, deferred or superseded."""
    if not _wants(Preview.get_or_none(Preview.id == preview_id), sha):
        return "superseded"
    try:
        with lease.hold(preview_id, services.settings.lease_ttl) as held:
            return _deploy(_Run(services, held, preview_id, sha))
    except lease.LeaseHeld:
        jobs.defer(services.queue, DEPLOY_JOB, preview_id, sha)
        return "deferred"


def _deploy(run: _Run) -> str:
    settings, kube, services = run.services.settings, run.services.kube, run.services
    try:
        preview = run.check()
        if preview.approved_sha != run.sha:
            why = trust.untrusted_because(services, preview)
            if why is not None:
                return _await_approval(run, preview, why)
        config = _configuration(services, preview)
        if (switched_off := config.wanted_for(preview.pr_number, preview.branch)) is not None:
            return _switch_off(run, switched_off)
        position = capacity.claim_slot(settings, run.preview_id, utcnow())
        if position is not None:
            detail = f"waiting for a free slot ({settings.max_active_previews} previews running), position {position}"
            Event.record(preview, "queued", detail, progress=0)
            _report(services, run.check(), detail=detail)
            return "waiting"
        names = names_for(settings, preview)
        now = utcnow()
        spec = _spec(settings, preview, names, now, config)
        preview = run.move(
            PreviewState.BUILDING,
            slug=names.slug,
            namespace=names.namespace,
            url=spec.url,
            credentials_ref=f"{names.namespace}/{names.auth_secret}",
        )
        deployment, _ = Deployment.get_or_create(preview=preview, head_sha=run.sha)
        deployment.status, deployment.failure_reason = "running", None
        deployment.save()
        _report(services, preview)
        with _phase(preview, deployment, "build", f"building {run.sha[:12]}"):
            image = _build(run, preview, deployment, spec, config)

        preview = run.move(PreviewState.DEPLOYING)
        _report(services, preview)
        with _phase(preview, deployment, "deploy", f"applying objects in {names.namespace}"):
            kube.wait_while_terminating(names.namespace, timeout=180)
            if not _ours_or_free(kube, names.namespace, run.preview_id):
                raise StepFailed("deploy", f"namespace {names.namespace} exists and is not this preview's: not touched")
            run.check()
            for obj in manifests.access_objects(spec, settings):
                kube.apply(obj)
            # With the chart's roles our rights here come from the binding just made: wait until
            # the API server's authorizer knows it.
            if not kube.wait_until_allowed(names.namespace, "patch", "deployments", "apps"):
                raise StepFailed("deploy", f"no rights in {names.namespace}: is PREVIEW_CLUSTER_ROLE bound?")
            for obj in manifests.guard_objects(spec, settings, _database_egress(settings, config)):
                kube.apply(obj)
        env_secret = None
        if config.database is not None:
            with _phase(preview, deployment, "database", f"preparing the {config.database.engine} database"):
                env_secret = _prepare_database(run, preview, spec, config, image)
        with _phase(preview, deployment, "configure", "applying the app"):
            password = _password(services, names) if settings.access == "basic" else None
            objects = [
                *([routing.auth_secret(spec, settings, credentials.USERNAME, password)] if password else []),
                *manifests.workload_objects(spec, _app_spec(config, image, env_secret)),
                *routing.route_objects(spec, settings),
            ]
            run.check()
            for obj in objects:
                kube.apply(obj)

        with _phase(preview, deployment, "rollout", "waiting for the app to become available"):
            outcome = kube.wait_for_rollout(
                names.namespace, names.app, settings.rollout_timeout.total_seconds(), should_stop=run.stopped
            )
        run.check()
        if not outcome.ready:
            raise StepFailed("rollout", outcome.message or outcome.reason)

        with database.atomic():
            preview = run.move(PreviewState.READY, deployed_sha=run.sha, expires_at=spec.expires_at)
            deployment.status = "ready"
            deployment.save()
        with _phase(preview, deployment, "report", "reporting to Gitea"):
            _report(services, preview, password)
        Event.record(preview, "ready", f"ready at {preview.url}", progress=PROGRESS["ready"])
        return "ready"
    except Superseded as why:
        log.info("deploy superseded preview_id=%s sha=%s why=%r", run.preview_id, run.sha[:12], why)
        Deployment.update(status="superseded", updated_at=utcnow()).where(
            (Deployment.preview == run.preview_id) & (Deployment.head_sha == run.sha) & (Deployment.status == "running")
        ).execute()
        return "superseded"
    except StepFailed as failure:
        return _fail(run, failure)


def _database_egress(settings: Settings, config: PreviewConfig) -> tuple[str, ...]:
    """A shared database server is let through the preview's egress policy; nothing else is."""
    if config.database is not None and config.database.engine in sql_admin.admins(settings):
        return settings.database_egress_cidrs
    return ()


def _prepare_database(
    run: _Run, preview: Preview, spec: manifests.PreviewSpec, config: PreviewConfig, image: str
) -> str:
    """Server, Secret, migrate and first seed; returns the Secret the app's env comes from."""
    assert config.database is not None
    namespace = spec.names.namespace

    def record(**fields: Any) -> None:
        if not Preview.change(run.preview_id, sha=run.sha, owner=run.lease.owner, **fields):
            raise Superseded(f"preview {run.preview_id} moved on while its database was prepared")

    try:
        prepared = preview_database.prepare(
            run.services.kube,
            run.services.settings,
            preview,
            spec,
            _app_spec(config, image),
            config.database,
            run_job=lambda job, phase: _run_job(run, namespace, job, phase),
            base_image=_base_image(run, preview, spec, config.database.engine),
            record=record,
            should_stop=run.stopped,
        )
    except SqlAdminError as error:
        raise StepFailed("database", str(error)) from None
    return prepared.secret


def _switch_off(run: _Run, why: str) -> str:
    """The preview file turns this preview off: remove whatever an earlier commit made."""
    Event.record(run.check(), "config", why)
    run.move(PreviewState.DELETING, waiting_since=None)
    return _teardown(run.services, run.lease, run.preview_id, why)


def _await_approval(run: _Run, preview: Preview, why: str) -> str:
    """Build nothing; tell Gitea why and how to approve. Unless an approval came in meanwhile."""
    hint = trust.approval_hint(run.services, why)
    not_approved = Preview.approved_sha.is_null() | (Preview.approved_sha != run.sha)
    try:
        # Not in line for a slot until approved.
        preview = run.move(PreviewState.PENDING_APPROVAL, also=not_approved, waiting_since=None)
    except Superseded:
        if run.check().approved_sha == run.sha:
            return _deploy(run)  # approved while we were asking Gitea
        raise
    Event.record(preview, "approval", hint)
    log.info("deploy waits for approval preview_id=%s sha=%s why=%r", run.preview_id, run.sha[:12], why)
    trust.forget_stale_label(run.services, preview)
    _report(run.services, preview, detail=hint)
    return "pending approval"


def _fail(run: _Run, failure: StepFailed) -> str:
    settings = run.services.settings
    with database.atomic():
        try:
            # A failed preview still holds its namespace: it expires sooner than a ready one.
            preview = run.move(PreviewState.FAILED, expires_at=utcnow() + settings.failed_preview_ttl)
        except Superseded:
            return "superseded"
        Deployment.get_or_create(preview=preview, head_sha=run.sha)  # a file refused before any build has none yet
        Deployment.update(
            status="failed",
            failure_reason=f"{failure.phase}: {failure}",
            updated_at=utcnow(),
            build_log_tail=(failure.log_tail or None) and failure.log_tail[-8000:],
        ).where((Deployment.preview == preview) & (Deployment.head_sha == run.sha)).execute()
        Event.record(preview, failure.phase, f"failed: {failure}")
    log.info(
        "deploy failed preview_id=%s sha=%s phase=%s why=%r", run.preview_id, run.sha[:12], failure.phase, str(failure)
    )
    _report(run.services, preview, detail=str(failure))
    return "failed"


def teardown(services: Services, preview_id: int, reason: str = "teardown requested") -> str:
    """Delete everything the preview used. Only on positive evidence: callers decide that."""
    preview = Preview.get_or_none(Preview.id == preview_id)
    if preview is None or preview.state != PreviewState.DELETING:
        return "superseded"  # reopened or pushed again since the teardown was asked for
    try:
        with lease.hold(preview_id, services.settings.lease_ttl) as held:
            return _teardown(services, held, preview_id, reason)
    except lease.LeaseHeld:
        jobs.defer(services.queue, TEARDOWN_JOB, preview_id, reason)
        return "deferred"


def _teardown(services: Services, held: lease.Lease, preview_id: int, reason: str) -> str:
    settings, kube = services.settings, services.kube
    preview = Preview.get_by_id(preview_id)
    if preview.state != PreviewState.DELETING:
        return "superseded"
    names = names_for(settings, preview)
    started = time.monotonic()
    selector = f"{manifests.LABEL_PREVIEW_ID}={preview.id},{manifests.LABEL_COMPONENT}=build"
    for job in kube.list_jobs(settings.build_namespace, selector):
        kube.delete_job(settings.build_namespace, job.name)
    namespace = preview.namespace or names.namespace
    try:
        preview_database.release(settings, preview)
    except SqlAdminError as error:
        # Kept as it is, namespace included, and retried: a database is never left without its record.
        Event.record(preview, "teardown", f"the database could not be dropped: {error}")
        raise
    if _ours_or_free(kube, namespace, preview_id):
        kube.delete_namespace(namespace)
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
        holds_slot=False,
        **preview_database.FORGOTTEN,
    )
    if not gone:
        return "superseded"
    preview = Preview.get_by_id(preview_id)
    Event.record(
        preview,
        "teardown",
        f"namespace {names.namespace} deleted ({reason})",
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    _report(services, preview, detail=reason)
    if services.queue is not None:
        # A slot is free: the next preview in line starts now, not at the scheduler's next pass.
        capacity.start_waiting(services.queue, settings, utcnow())
    return "deleted"


def report_again(services: Services, preview_id: int) -> None:
    """The retried report job: publish the current state; a GiteaError makes RQ retry it.

    It holds the lease too, so a report never overtakes the deploy of a newer commit."""
    if services.gitea is None:
        return
    try:
        with lease.hold(preview_id, services.settings.lease_ttl):
            preview = Preview.get_by_id(preview_id)
            password = None
            if (
                services.settings.comment_password
                and preview.repository.private
                and preview.state == PreviewState.READY
            ):
                names = names_for(services.settings, preview)
                password = (services.kube.read_secret_data(names.namespace, names.auth_secret) or {}).get("password")
            reporting.report(services.gitea, services.settings, preview, password)
    except lease.LeaseHeld:
        jobs.defer(services.queue, REPORT_JOB, preview_id)
