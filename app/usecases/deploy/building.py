"""Building a commit's image with kaniko, for a preview and for the base of its template database."""

from __future__ import annotations

import re
from collections.abc import Callable

from app.domain import naming
from app.domain.k8s import build as builds
from app.domain.k8s.labels import LABEL_COMPONENT, LABEL_PREVIEW_ID, PreviewSpec
from app.domain.naming import image_repository
from app.domain.preview_file import PreviewFileError
from app.models import Deployment, Event, Preview
from app.settings import Settings
from app.usecases.deploy import policies, preview_config, preview_database
from app.usecases.deploy.preview_config import PreviewConfig
from app.usecases.deploy.runs import Run, StepFailed, Superseded

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def build(run: Run, preview: Preview, deployment: Deployment, spec: PreviewSpec, config: PreviewConfig) -> str:
    """The image to deploy: the configured one, or the preview's commit built with kaniko, pinned by digest."""
    if config.image:
        return config.image
    git_ref = f"refs/pull/{preview.pr_number}/head" if preview.pr_number is not None else f"refs/heads/{preview.branch}"
    # An approved commit is a stranger's: it neither reads nor writes the cache trusted builds use.
    shared_cache = preview.approved_sha != spec.head_sha
    destination, digest = build_commit(
        run, preview, spec, config, spec.head_sha, git_ref, drop_older=True, shared_cache=shared_cache
    )
    deployment.image = destination
    deployment.digest = digest
    deployment.save()
    return f"{destination.rsplit(':', 1)[0]}@{digest}"


def build_commit(
    run: Run,
    preview: Preview,
    spec: PreviewSpec,
    config: PreviewConfig,
    sha: str,
    git_ref: str,
    drop_older: bool = False,
    shared_cache: bool = True,
) -> tuple[str, str]:
    """Build commit `sha` (reachable from `git_ref`) with kaniko; return its tag and digest."""
    settings, kube = run.services.settings, run.services.kube
    if not settings.preview_registry:
        raise StepFailed("build", "PREVIEW_REGISTRY is not set and the repository names no image to deploy")
    names = spec.names
    selector = f"{LABEL_PREVIEW_ID}={preview.id},{LABEL_COMPONENT}=build"
    failed_before = False
    for job in kube.list_jobs(settings.build_namespace, selector):
        if job.name == names.build_job(sha):
            failed_before = job.state == "failed"  # asked again for this commit: build it again
        elif drop_older:
            # An older commit's build: superseded, never reported as this PR's result.
            kube.delete_job(settings.build_namespace, job.name)

    repository = image_repository(settings.preview_registry, preview.repository.full_name)
    registry_secret = naming.registry_secret(preview.repository.full_name)
    if kube.read_secret_data(settings.build_namespace, registry_secret) is None:
        if not settings.registry_shared_fallback:
            raise StepFailed(
                "build",
                f"no registry credentials for {preview.repository.full_name}: the operator makes the Secret"
                f" {registry_secret} in {settings.build_namespace} (or sets REGISTRY_SHARED_FALLBACK=true)",
            )
        registry_secret = builds.REGISTRY_CREDENTIALS_SECRET
    build = builds.BuildSpec(
        job_name=names.build_job(sha),
        namespace=settings.build_namespace,
        clone_url=clone_url(settings, preview),
        git_ref=git_ref,
        destination=f"{repository}:{names.image_tag(sha)}",
        cache_repository=f"{repository}/cache" if shared_cache else None,
        dockerfile=config.build.dockerfile,
        context=config.build.context,
        target=config.build.target,
        build_args=config.build.args,
        pod_labels=config.build_pod_labels,
        registry_secret=registry_secret,
    )
    Event.record(preview, "registry", f"pushing {sha[:12]} to {repository} with the Secret {registry_secret}")
    policy = policies.build(settings)
    for build_object in (builds.build_namespace, builds.build_quota, builds.build_network_policy):
        kube.apply(build_object(policy))
    kube.replace_job(builds.build_job(spec, build, policy, sha), recreate=failed_before)
    outcome = kube.wait_for_job(
        settings.build_namespace,
        build.job_name,
        settings.build_timeout.total_seconds(),
        should_stop=run.stopped,
        single_pod=True,  # the build Job's one pod, never retried (app/domain/k8s/build.py)
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


def base_image(
    run: Run, preview: Preview, spec: PreviewSpec, engine: str
) -> Callable[[], preview_database.BaseImage | None]:
    """For a template database: the commit the PR branched from, its image (built with the base's
    own preview file) and the base file's migrate and seed commands. Never the PR's: a template
    is shared by every PR of that base, so no PR may choose what goes into it."""

    def find() -> preview_database.BaseImage | None:
        gitea, settings = run.services.gitea, run.services.settings
        if not gitea.configured or preview.pr_number is None:
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
            destination, digest = build_commit(run, preview, spec, base, str(base_sha), f"refs/heads/{base_ref}")
            image = f"{destination.rsplit(':', 1)[0]}@{digest}"
        return preview_database.BaseImage(str(base_sha), image, wanted.migrate, wanted.seed, dict(base.env))

    return find


def clone_url(settings: Settings, preview: Preview) -> str:
    """Where the build fetches from: our Gitea, never a URL a webhook payload named."""
    if settings.gitea_url:
        return f"{settings.gitea_url.rstrip('/')}/{preview.repository.full_name}.git"
    return str(preview.repository.clone_url)
