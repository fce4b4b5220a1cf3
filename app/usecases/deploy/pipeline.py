"""Deploying a preview at a commit: the worker's deploy job (teardown.py removes it again).

One worker acts on a preview at a time: each run holds the preview's lease
(app/usecases/deploy/lease.py), and a job that finds it held comes back later. Every
change of the preview's row is conditional on what the run believed (its
commit, its state, its lease), so a webhook that recorded a newer commit
meanwhile is never undone: the run notices at its next check and stops as
superseded. Everything applied is idempotent, so a run killed half-way can
simply run again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import Any

from app.db import database, utcnow
from app.domain import credentials, gitea_links
from app.domain.k8s import routing, workload
from app.domain.k8s.isolation import Opening
from app.domain.k8s.labels import LABEL_COMPONENT, LABEL_PREVIEW_ID, PreviewSpec
from app.domain.k8s.workload import AppSpec, ExtraServiceSpec
from app.domain.naming import PreviewNames
from app.domain.preview_file import PreviewFileError
from app.domain.states import DeploymentStatus, PreviewState
from app.models import Deployment, Event, Preview
from app.settings import Settings
from app.usecases import jobs
from app.usecases.deploy import (
    budgets,
    building,
    capacity,
    isolating,
    lease,
    policies,
    preview_config,
    preview_database,
    reporting,
    routed,
    screenshots,
    sleeping,
    teardown,
    trust,
)
from app.usecases.deploy.isolating import IsolationAhead
from app.usecases.deploy.lookahead import Lookahead
from app.usecases.deploy.namespaces import names_for
from app.usecases.deploy.preview_config import PreviewConfig
from app.usecases.deploy.runs import PROGRESS, ProgressReport, Run, StepFailed, Superseded, phase, wants
from app.usecases.jobs import DEPLOY_JOB
from app.usecases.ports import Services, SqlAdmin, SqlAdminError

log = logging.getLogger(__name__)


def _report_in_background(services: Services, preview: Preview) -> None:
    with database.connection_context():  # the thread's own connection: peewee's are per thread
        reporting.tell(services, preview)


def _report_meanwhile(run: Run, preview: Preview) -> None:
    """A progress report sent while the deploy goes on, if it lasts (runs.ProgressReport).
    The run's next report, and its end, settle this one first, so Gitea sees the states
    in order."""
    run.wait_for_reports()
    _ = preview.repository  # loaded here, once
    run.pending_report = ProgressReport(partial(_report_in_background, run.services, preview))


def _password(services: Services, names: PreviewNames, new_namespace: bool) -> str:
    """Keep the preview's password across pushes; make one on first deploy (a namespace this
    deploy made holds none yet)."""
    if new_namespace:
        return credentials.new_password()
    existing = services.kube.read_secret_data(names.namespace, names.auth_secret)
    if existing and existing.get("password"):
        return existing["password"]
    return credentials.new_password()


def _app_spec(config: PreviewConfig, image: str, env_secret: str | None = None) -> AppSpec:
    return AppSpec(
        image=image,
        port=config.port,
        health_path=config.health_path,
        env=config.env,
        pod_labels=config.pod_labels,
        replicas=config.replicas,
        requests=config.requests,
        limits=config.limits,
        env_secret=env_secret,
        services=tuple(ExtraServiceSpec(s.name, s.image, s.port, s.env) for s in config.services),
    )


def _spec(
    settings: Settings, preview: Preview, names: PreviewNames, now: datetime, config: PreviewConfig
) -> PreviewSpec:
    ttl = config.ttl or settings.preview_ttl
    return PreviewSpec(
        preview_id=preview.id,
        names=names,
        repository=preview.repository.full_name,
        branch=preview.branch,
        head_sha=preview.head_sha,
        created_at=preview.created_at,
        expires_at=now + ttl,
        ttl=ttl,
        pr_number=preview.pr_number,
        pr_url=gitea_links.pull_request_url(settings.gitea_url, preview.repository.full_name, preview.pr_number),
        scheme=settings.preview_scheme,
        port=settings.preview_port,
    )


def _configuration(run: Run, preview: Preview) -> PreviewConfig:
    """The repository's settings and its preview file at the commit (read beside the PR when
    the job started that read); StepFailed for an invalid file."""
    services = run.services
    repository, sha, early = preview.repository.full_name, preview.head_sha, run.preview_file
    try:
        if early is not None and (early.repository, early.sha) == (repository, sha):
            found = early.result()
        else:
            found = preview_config.read_file(services.gitea, services.settings, repository, sha)
    except PreviewFileError as error:
        raise StepFailed("config", str(error)) from None
    if found is not None and found.image and not preview_config.image_allowed(services.settings, found.image):
        allowed = ", ".join(preview_config.allowed_image_prefixes(services.settings)) or "none"
        raise StepFailed("config", f"image {found.image} is not under the allowed prefixes ({allowed})")
    return preview_config.resolve(preview.repository.settings, found)


def _run_job(run: Run, namespace: str, job: dict[str, Any], phase: str) -> None:
    """Run a migrate or seed Job to completion; StepFailed with its output's tail otherwise."""
    kube, settings = run.services.kube, run.services.settings
    name = job["metadata"]["name"]
    selector = f"{LABEL_PREVIEW_ID}={run.preview_id},{LABEL_COMPONENT}={phase}"
    failed_before = any(j.name == name and j.state == "failed" for j in kube.list_jobs(namespace, selector))
    kube.replace_job(job, recreate=failed_before)
    outcome = kube.wait_for_job(
        namespace, name, settings.rollout_timeout.total_seconds(), should_stop=run.stopped, quota_refusal_is_final=True
    )
    run.check()
    if outcome.state in ("missing", "stopped"):
        raise Superseded(f"{phase} job {name} was deleted")
    if outcome.reason == "quota":
        # Not left to run later, when a pod ends and makes room, unwatched by any deploy.
        kube.delete_job(namespace, name)
        raise StepFailed(phase, f"the namespace quota refuses the {phase} Job's pod: {outcome.message}")
    if outcome.state != "complete":
        tail = kube.pod_log_tail(namespace, f"job-name={name}") or outcome.message
        last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
        why = f"the {phase} command timed out" if outcome.state == "timeout" else f"the {phase} command failed"
        raise StepFailed(phase, f"{why}: {last[:100]}" if last else why, tail)


def deploy(
    services: Services,
    preview_id: int,
    sha: str,
    pull: dict[str, Any] | None = None,
    preview_file: preview_config.FileRead | None = None,
    trust_reads: Lookahead | None = None,
    held: lease.Lease | None = None,
    ahead: IsolationAhead | None = None,
) -> str:
    """Make the preview ready at `sha`. Returns ready, failed, waiting, deferred or superseded.
    `pull`: the PR as Gitea answered it earlier in this job, for the trust check;
    `preview_file` and `trust_reads`: the reads this job started beside it; `held`: the
    preview's lease when the job holds it already, and `ahead` the isolation it started."""
    if not wants(Preview.get_or_none(Preview.id == preview_id), sha):
        return "superseded"

    def run_under(leased: lease.Lease) -> Run:
        return Run(services, leased, preview_id, sha, pull=pull, preview_file=preview_file, trust_reads=trust_reads)

    if held is not None:
        return _deploy(run_under(held), ahead)
    try:
        with lease.hold(preview_id, services.settings.lease_ttl) as leased:
            return _deploy(run_under(leased))
    except lease.LeaseHeld:
        jobs.defer(services.queue, DEPLOY_JOB, preview_id, sha)
        return "deferred"


def isolate_ahead(
    services: Services, held: lease.Lease, preview_id: int, sha: str, sender: str | None, trust_reads: Lookahead | None
) -> IsolationAhead | None:
    """Start the preview's namespace and guards for `sha` while the job reads Gitea, under the
    lease the job holds (isolating.py), if the checks to come are expected to let it deploy."""
    preview = Preview.get_or_none(Preview.id == preview_id)
    if not wants(preview, sha):
        return None
    settings = services.settings
    # The repository's defaults for now: the deploy applies what its preview file changes.
    config, now = preview_config.resolve(preview.repository.settings, None), utcnow()
    spec = _spec(settings, preview, names_for(settings, preview), now, config)
    go_ahead = partial(_expected_to_go_ahead, services, preview, sender, trust_reads)
    return IsolationAhead(services, held, spec, now, go_ahead)


def _expected_to_go_ahead(
    services: Services, preview: Preview, sender: str | None, trust_reads: Lookahead | None
) -> bool:
    """Whether the trust check, the budget and the slot are expected to let the deploy through:
    a writer sent the delivery (as read beside the PR), and the preview holds a slot or one is
    free and the budget allows it. A guess that decides nothing but what is applied early."""
    settings, now = services.settings, utcnow()
    if not preview.holds_slot and (
        not capacity.slot_free(settings, preview, now) or budgets.over_budget(settings, preview.repository, now)
    ):
        return False
    return trust.expected_to_build(services, preview, sender, trust_reads)


def _deploy(run: Run, ahead: IsolationAhead | None = None) -> str:
    services = run.services
    try:
        preview = run.check()
        if preview.approved_sha != run.sha:
            trust.forget_stale_label(services, preview, run.sha)
            why = trust.untrusted_because(services, preview, run.pull, run.trust_reads)
            if why is not None:
                return _await_approval(run, preview, why, ahead)
        config = _configuration(run, preview)
        if (switched_off := config.wanted_for(preview.pr_number, preview.branch)) is not None:
            return _switch_off(run, switched_off, ahead)
        if (over := budgets.hold_back(services.settings, preview, utcnow())) is not None:
            return _wait(run, preview, f"waiting for budget: {over}")
        if (position := capacity.claim_slot(services.settings, run.preview_id, utcnow())) is not None:
            limit = services.settings.max_active_previews
            return _wait(run, preview, f"waiting for a free slot ({limit} previews running), position {position}")
        return _roll_out(run, preview, config, ahead)
    except Superseded as why:
        log.info("deploy superseded preview_id=%s sha=%s why=%r", run.preview_id, run.sha[:12], why)
        Deployment.update(status=DeploymentStatus.SUPERSEDED, updated_at=utcnow()).where(
            (Deployment.preview == run.preview_id)
            & (Deployment.head_sha == run.sha)
            & (Deployment.status == DeploymentStatus.RUNNING)
        ).execute()
        return "superseded"
    except StepFailed as failure:
        run.wait_for_reports()
        return _fail(run, failure)
    finally:
        run.wait_for_reports()  # the work horse ends with the job: never cut a report short


def _wait(run: Run, preview: Preview, detail: str) -> str:
    """Queued, not started: say why on the preview and in Gitea."""
    Event.record(preview, "queued", detail, progress=0)
    Preview.update(**Preview.report_due_fields(utcnow(), detail)).where(Preview.id == run.preview_id).execute()
    reporting.tell(run.services, run.check())
    return "waiting"


def _roll_out(run: Run, preview: Preview, config: PreviewConfig, ahead: IsolationAhead | None) -> str:
    """Build, isolate, apply, wait until available, report: the commit's attempt."""
    settings, services = run.services.settings, run.services
    names = names_for(settings, preview)
    before = ahead.result() if ahead is not None else None
    # The expiry counts from the job's start when the namespace was made ahead: the same
    # annotations then, nothing to apply again.
    spec = _spec(settings, preview, names, ahead.made_at if ahead else utcnow(), config)
    preview = run.move(
        PreviewState.BUILDING,
        slug=names.slug,
        namespace=names.namespace,
        url=spec.url,
        credentials_ref=f"{names.namespace}/{names.auth_secret}",
    )
    deployment, _ = Deployment.get_or_create(preview=preview, head_sha=run.sha)
    deployment.status, deployment.failure_reason = DeploymentStatus.RUNNING, None
    deployment.save()
    if not config.image:  # a ready-made image needs no build: the "deploying" report follows at once
        reporting.tell(services, preview)
    with phase(preview, deployment, "build", f"building {run.sha[:12]}"):
        image = building.build(run, preview, deployment, spec, config)

    preview = run.move(PreviewState.DEPLOYING)
    _report_meanwhile(run, preview)
    with phase(preview, deployment, "deploy", f"applying objects in {names.namespace}"):
        opening = _database_egress(settings, services.shared_databases(settings), config)
        isolated = isolating.isolate(services, run.preview_id, spec, opening, run.check, before)
    env_secret = None
    if config.database is not None:
        with phase(preview, deployment, "database", f"preparing the {config.database.engine} database"):
            env_secret = _prepare_database(run, preview, spec, config, image)
    with phase(preview, deployment, "configure", "applying the app"):
        password, applied = _apply_app(run, spec, _app_spec(config, image, env_secret), isolated.new)

    with phase(preview, deployment, "rollout", "waiting for the app to become available"):
        outcome = services.kube.wait_for_rollout(
            names.namespace,
            names.app,
            settings.rollout_timeout.total_seconds(),
            should_stop=run.stopped,
            applied=applied,
        )
    if not outcome.ready:
        run.check()
        raise StepFailed("rollout", outcome.message or outcome.reason)
    sleeping.remove_wake_route(services.kube, run.check())  # it slept: its app is back
    _wait_for_route(run, preview, deployment, spec, config, password)

    idle_after = preview_config.idle_after(settings, config)
    with database.atomic():
        preview = run.move(
            PreviewState.READY,
            deployed_sha=run.sha,
            expires_at=spec.expires_at,
            ready_since=utcnow(),
            idle_after_seconds=int(idle_after.total_seconds()) if idle_after else None,
            slept_at=None,
            wake_endpoint=None,
            wake_requested_at=None,
        )
        deployment.status = DeploymentStatus.READY
        deployment.save()
    with phase(preview, deployment, "report", "reporting to Gitea"):
        run.wait_for_reports()
        reporting.tell(services, preview, password)
    Event.record(preview, "ready", f"ready at {preview.url}", progress=PROGRESS["ready"])
    if screenshots.wanted(settings, config.screenshots):
        screenshots.enqueue(services.queue, run.preview_id, run.sha, config.screenshots)
    return "ready"


# How long a deploy waits for the data plane to route the preview's host to its app.
ROUTE_TIMEOUT_SECONDS = 30.0


def _wait_for_route(
    run: Run, preview: Preview, deployment: Deployment, spec: PreviewSpec, config: PreviewConfig, password: str | None
) -> None:
    """With PREVIEW_INGRESS_URL, until the preview's link reaches its app (routed.py). A route
    still missing after ROUTE_TIMEOUT_SECONDS is said in the preview's history, and the preview
    is reported ready all the same: its app is up, the data plane is the operator's to look at."""
    services, host = run.services, spec.names.host
    if not services.routes.configured or services.settings.access == "gitea":
        return
    auth = (credentials.USERNAME, password) if password else None
    with phase(preview, deployment, "route", f"waiting for {host} to reach the app"):
        reached = routed.wait_until_routed(
            services.routes, host, config.health_path, auth, ROUTE_TIMEOUT_SECONDS, run.stopped
        )
    if not reached:
        run.check()
        Event.record(
            preview,
            "route",
            f"{host} did not reach the app through {services.settings.ingress_url} within"
            f" {ROUTE_TIMEOUT_SECONDS:.0f} s: reported ready all the same",
        )


def _apply_app(run: Run, spec: PreviewSpec, app: AppSpec, new_namespace: bool) -> tuple[str | None, dict[str, Any]]:
    """The credentials, the app and its services, the way in, in one batch (nothing of it runs
    before its pods are scheduled). Returns the password (basic access) and the app's
    Deployment as stored, for the rollout's watch to start from."""
    settings, services = run.services.settings, run.services
    password = _password(services, spec.names, new_namespace) if settings.access == "basic" else None
    way_in = policies.routing(settings)
    objects = [
        *(routing.auth_secrets(spec, way_in, credentials.USERNAME, password) if password else []),
        *workload.workload_objects(spec, app),
        *routing.route_objects(spec, way_in),
    ]
    run.check()
    stored = run.services.kube.apply_all(objects)
    app_deployment = next(
        found for found in stored if found.get("kind") == "Deployment" and found["metadata"]["name"] == spec.names.app
    )
    return password, app_deployment


def _database_egress(settings: Settings, admins: dict[str, SqlAdmin], config: PreviewConfig) -> Opening | None:
    """A shared database server's port is let through the preview's egress policy; nothing else is."""
    admin = admins.get(config.database.engine) if config.database is not None else None
    if admin is None:
        return None
    return Opening(settings.database_egress_cidrs, (admin.port,))


def _prepare_database(run: Run, preview: Preview, spec: PreviewSpec, config: PreviewConfig, image: str) -> str:
    """Server, Secret, migrate and first seed; returns the Secret the app's env comes from."""
    assert config.database is not None
    namespace = spec.names.namespace

    def record(**fields: Any) -> None:
        if not Preview.change(run.preview_id, sha=run.sha, owner=run.lease.owner, **fields):
            raise Superseded(f"preview {run.preview_id} moved on while its database was prepared")

    try:
        return preview_database.prepare(
            run.services.kube,
            run.services.settings,
            run.services.shared_databases(run.services.settings),
            preview,
            spec,
            _app_spec(config, image),
            config.database,
            run_job=lambda job, phase: _run_job(run, namespace, job, phase),
            base_image=building.base_image(run, preview, spec, config.database.engine),
            record=record,
            should_stop=run.stopped,
        )
    except SqlAdminError as error:
        raise StepFailed("database", str(error)) from None


def _switch_off(run: Run, why: str, ahead: IsolationAhead | None) -> str:
    """The preview file turns this preview off: remove whatever an earlier commit made (and
    whatever was made ahead in this job, once it has all been made)."""
    if ahead is not None:
        ahead.result()
    Event.record(run.check(), "config", why)
    run.move(PreviewState.DELETING, waiting_since=None)
    return teardown.remove(run.services, run.lease, run.preview_id, why)


def _await_approval(run: Run, preview: Preview, why: str, ahead: IsolationAhead | None) -> str:
    """Build nothing; tell Gitea why and how to approve. Unless an approval came in meanwhile."""
    hint = trust.approval_hint(run.services, why)
    not_approved = Preview.approved_sha.is_null() | (Preview.approved_sha != run.sha)
    try:
        # Not in line for a slot until approved.
        preview = run.move(PreviewState.PENDING_APPROVAL, also=not_approved, waiting_since=None, report_detail=hint)
    except Superseded:
        if run.check().approved_sha == run.sha:
            return _deploy(run, ahead)  # approved while we were asking Gitea
        raise
    Event.record(preview, "approval", hint)
    log.info("deploy waits for approval preview_id=%s sha=%s why=%r", run.preview_id, run.sha[:12], why)
    reporting.tell(run.services, preview)
    return "pending approval"


def _fail(run: Run, failure: StepFailed) -> str:
    settings = run.services.settings
    # The database's reason can name the shared server's address: that stays in the API and the log.
    public = "the database could not be prepared" if failure.phase == "database" else str(failure)
    with database.atomic():
        try:
            # A failed preview still holds its namespace: it expires sooner than a ready one.
            expires_at = utcnow() + settings.failed_preview_ttl
            preview = run.move(PreviewState.FAILED, expires_at=expires_at, report_detail=public)
        except Superseded:
            return "superseded"
        Deployment.get_or_create(preview=preview, head_sha=run.sha)  # a file refused before any build has none yet
        Deployment.update(
            status=DeploymentStatus.FAILED,
            failure_reason=f"{failure.phase}: {failure}",
            updated_at=utcnow(),
            build_log_tail=(failure.log_tail or None) and failure.log_tail[-8000:],
        ).where((Deployment.preview == preview) & (Deployment.head_sha == run.sha)).execute()
        Event.record(preview, failure.phase, f"failed: {failure}")
    log.info(
        "deploy failed preview_id=%s sha=%s phase=%s why=%r", run.preview_id, run.sha[:12], failure.phase, str(failure)
    )
    reporting.tell(run.services, preview)
    return "failed"
