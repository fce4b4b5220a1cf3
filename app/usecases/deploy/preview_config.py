"""One preview's configuration: the operator's repository settings, the repository's
`.gitea/preview.yml` at the head commit, then the operator's overrides.

`repository.settings` keys (image, dockerfile, port, health_path, env, replicas)
are defaults a preview file may change; its `override` mapping holds the same keys
and wins over the file. `pod_labels` and `build_pod_labels` are the operator's alone.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from app.domain import preview_file
from app.domain.preview_file import Build, Database, ExtraService, PreviewFile
from app.settings import Settings, parse_duration
from app.usecases.ports import GiteaApi


@dataclass(frozen=True)
class PreviewConfig:
    image: str | None  # deploy this image instead of building
    build: Build
    port: int = 8080
    health_path: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)
    replicas: int = 1
    ttl: timedelta | None = None
    idle_after: timedelta | None = None
    database: Database | None = None
    services: tuple[ExtraService, ...] = ()
    pod_labels: dict[str, str] = field(default_factory=dict)
    build_pod_labels: dict[str, str] = field(default_factory=dict)
    pull_requests: bool = True
    branches: tuple[str, ...] | None = None
    screenshots: tuple[str, ...] = preview_file.DEFAULT_SCREENSHOTS  # pages shown in the PR comment
    from_file: bool = False

    def wanted_for(self, pr_number: int | None, branch: str) -> str | None:
        """Why the file turns this preview off, or None when it is wanted."""
        if pr_number is not None and not self.pull_requests:
            return f"{preview_file.PATH} turns pull request previews off"
        matches = self.branches is None or any(fnmatch.fnmatchcase(branch, p) for p in self.branches)
        if pr_number is None and not matches:
            return f"{preview_file.PATH} has no branch pattern matching {branch}"
        return None


def limits(settings: Settings) -> preview_file.Limits:
    return preview_file.Limits(
        max_replicas=settings.quota_pods,
        max_ttl=settings.max_preview_ttl,
        max_idle_after=settings.preview_idle_after,
        quota={
            "requests.cpu": settings.quota_requests_cpu,
            "requests.memory": settings.quota_requests_memory,
            "limits.cpu": settings.quota_limits_cpu,
            "limits.memory": settings.quota_limits_memory,
        },
    )


def read_file(gitea: GiteaApi, settings: Settings, repository: str, sha: str) -> PreviewFile | None:
    """The preview file at `sha`, None when there is none. GiteaError when Gitea cannot say;
    PreviewFileError when the file is not valid."""
    if not gitea.configured:
        return None  # no Gitea to read it from: the defaults
    raw = gitea.file_at(repository, preview_file.PATH, sha)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise preview_file.PreviewFileError("", None, "is not UTF-8 text") from None
    return preview_file.parse(text, limits(settings))


class FileRead:
    """The preview file at one commit, read on a thread of its own while the job asks Gitea
    for the PR: the two round trips overlap. `result()` answers as read_file would."""

    def __init__(self, gitea: GiteaApi, settings: Settings, repository: str, sha: str) -> None:
        self.repository, self.sha = repository, sha
        self._found: PreviewFile | None = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._read, args=(gitea, settings), daemon=True)
        self._thread.start()

    def _read(self, gitea: GiteaApi, settings: Settings) -> None:
        try:
            self._found = read_file(gitea, settings, self.repository, self.sha)
        except Exception as error:  # handed to whoever asks for the result, in their thread
            self._error = error

    def result(self) -> PreviewFile | None:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._found


def _strings(mapping: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (mapping or {}).items()}


def resolve(repository_settings: dict[str, Any] | None, found: PreviewFile | None) -> PreviewConfig:
    """Merge the three layers. Pure: the file has been validated already."""
    defaults = dict(repository_settings or {})
    override = dict(defaults.pop("override", None) or {})
    file = found or PreviewFile()

    def pick(key: str, from_file: Any, fallback: Any) -> Any:
        if key in override:
            return override[key]
        if from_file is not None:
            return from_file
        return defaults.get(key, fallback)

    build = file.build or Build(dockerfile=str(defaults.get("dockerfile", "Dockerfile")))
    if "dockerfile" in override:
        build = Build(build.context, str(override["dockerfile"]), build.target, build.args)
    # A file that asks to build wins over a default image; an override image wins over everything.
    image = override.get("image") or file.image or (None if file.build else defaults.get("image"))
    ttl = file.ttl
    if "ttl" in override:
        ttl = parse_duration(str(override["ttl"]))
    return PreviewConfig(
        image=str(image) if image else None,
        build=build,
        port=int(pick("port", file.port, 8080)),
        health_path=str(pick("health_path", file.health_path, "/")),
        env={**_strings(defaults.get("env")), **file.env, **_strings(override.get("env"))},
        requests=file.requests,
        limits=file.limits,
        replicas=int(pick("replicas", file.replicas, 1)),
        ttl=ttl,
        idle_after=file.idle_after,
        database=file.database,
        services=file.services,
        pod_labels=_strings(defaults.get("pod_labels")),
        build_pod_labels=_strings(defaults.get("build_pod_labels")),
        pull_requests=file.pull_requests,
        branches=file.branches,
        screenshots=preview_file.DEFAULT_SCREENSHOTS if file.screenshots is None else file.screenshots,
        from_file=found is not None,
    )


def idle_after(settings: Settings, config: PreviewConfig) -> timedelta | None:
    """How long the preview may stay unvisited before it sleeps; None: it never sleeps (the
    service cannot see visits or has no wake page, or neither the operator nor the file asks)."""
    if not settings.sleeping_on:
        return None
    asked = [limit for limit in (settings.preview_idle_after, config.idle_after) if limit is not None]
    return min(asked) if asked else None


def allowed_image_prefixes(settings: Settings) -> tuple[str, ...]:
    """Where a preview file's `image:` may come from: PREVIEW_ALLOWED_IMAGES, else the preview
    registry. A file's migrate and seed commands run in that image with the database's password."""
    if settings.allowed_images:
        return settings.allowed_images
    return (settings.preview_registry.rstrip("/") + "/",) if settings.preview_registry else ()


def image_allowed(settings: Settings, image: str) -> bool:
    return any(image.startswith(prefix) for prefix in allowed_image_prefixes(settings))
