"""The labels and metadata every object of a preview carries: how the service finds its own
objects again (the sweep, the admission policies, the logs) and how a person reads them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.domain.naming import PreviewNames

MANAGED_BY = "gitea-previews"
PREFIX = "previews.gitea.io"
LABEL_PREVIEW_ID = f"{PREFIX}/preview-id"
LABEL_REPOSITORY = f"{PREFIX}/repository"
LABEL_PR = f"{PREFIX}/pr"
LABEL_BRANCH = f"{PREFIX}/branch"
LABEL_SHA = f"{PREFIX}/sha"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"


def timestamp(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat() + "Z"


@dataclass(frozen=True)
class PreviewSpec:
    """What the objects need to know about one preview at one commit."""

    preview_id: int
    names: PreviewNames
    repository: str
    branch: str
    head_sha: str
    created_at: datetime
    expires_at: datetime
    ttl: timedelta
    pr_number: int | None = None
    pr_url: str | None = None
    scheme: str = "https"  # PREVIEW_SCHEME
    port: int | None = None  # PREVIEW_PORT, when not the scheme's default

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.names.host}{'' if self.port is None else f':{self.port}'}"


def labels(spec: PreviewSpec, component: str | None = None) -> dict[str, str]:
    result = {
        "environment": "preview",
        LABEL_MANAGED_BY: MANAGED_BY,
        "app.kubernetes.io/part-of": MANAGED_BY,
        "app.kubernetes.io/instance": spec.names.slug,
        LABEL_PREVIEW_ID: str(spec.preview_id),
        LABEL_REPOSITORY: spec.names.repository_label,
    }
    if spec.pr_number is not None:
        result[LABEL_PR] = str(spec.pr_number)
    else:
        result[LABEL_BRANCH] = spec.names.slug
    if component:
        result[LABEL_COMPONENT] = component
    return result


def object_meta(spec: PreviewSpec, name: str, component: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": spec.names.namespace, "labels": labels(spec, component), **extra}


def selector(spec: PreviewSpec, component: str) -> dict[str, str]:
    """The labels a workload's selector matches: this preview's pods of one component."""
    return {"app.kubernetes.io/instance": spec.names.slug, LABEL_COMPONENT: component}


def secret(spec: PreviewSpec, name: str, data: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": object_meta(spec, name, **extra),
        "stringData": data,
    }
