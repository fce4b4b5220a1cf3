"""Every Kubernetes name, host and label value comes from here.

`slug` is the one recipe: ASCII-fold, lowercase, map anything outside
[a-z0-9] to '-', collapse, trim, cap the length, and append a short hash of the
raw value, so two different branches never share a name (even ones that differ
only in case or punctuation) and the same branch keeps its name across pushes.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

# 64 bits: no one can craft a second branch name that lands on another preview's names.
HASH_LENGTH = 16
SLUG_MAX = 44  # leaves room for "preview-" (namespace) and "build-...-<sha12>" (Job) within 63
NAMESPACE_PREFIX = "preview-"
AUTH_SECRET = "preview-basic-auth"
REGISTRY_SECRET_PREFIX = "registry-credentials-"
SHORT_SHA = 12

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def short_hash(raw: str, length: int = HASH_LENGTH) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def _readable(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_ALNUM.sub("-", folded.lower()).strip("-")


def slug(text: str, raw: str | None = None, max_length: int = SLUG_MAX) -> str:
    """A DNS-1123 label of at most `max_length`, ending in a hash of `raw` (default: `text`)."""
    digest = short_hash(text if raw is None else raw)
    room = max_length - HASH_LENGTH - 1
    readable = _readable(text)[:room].rstrip("-")
    return f"{readable}-{digest}" if readable else digest


def dns1035(text: str, max_length: int = 63) -> str:
    """A DNS-1035 label (Service names): must start with a letter."""
    readable = _readable(text)
    if not readable or not readable[0].isalpha():
        readable = f"app-{readable}".rstrip("-")
    return readable[:max_length].rstrip("-")


def label_value(text: str) -> str:
    """A label value (<= 63, no '/'): the slug of `text`."""
    return slug(text, max_length=63)


@dataclass(frozen=True)
class PreviewNames:
    slug: str
    namespace: str
    app: str  # Deployment, Service and Ingress name inside the namespace
    host: str
    repository_label: str

    @property
    def auth_secret(self) -> str:
        return AUTH_SECRET

    def build_job(self, sha: str) -> str:
        return f"build-{self.slug}-{sha[:SHORT_SHA]}"

    def image_tag(self, sha: str) -> str:
        return f"{self.slug}-{sha[:SHORT_SHA]}"


def preview_names(repository: str, target_key: str, pr_number: int | None, branch: str, domain: str) -> PreviewNames:
    """Names of one preview, from its repository (`owner/name`) and target (PR number or branch)."""
    repo_name = repository.split("/", 1)[-1]
    readable = f"{repo_name}-pr-{pr_number}" if pr_number is not None else f"{repo_name}-{branch}"
    preview_slug = slug(readable, raw=target_key)
    return PreviewNames(
        slug=preview_slug,
        namespace=f"{NAMESPACE_PREFIX}{preview_slug}",
        app=dns1035(f"{repo_name}-preview", max_length=50),
        host=f"{preview_slug}.{domain}",
        repository_label=label_value(repository),
    )


def image_repository(registry: str, repository: str) -> str:
    """`<registry>/<owner>/<name>-<hash>`, lowercase as image repositories must be.

    The hash of the whole name keeps repositories apart whose readable forms
    agree (`a.b/c` and `a-b/c`): each pushes only to its own path, cache included.
    """
    owner, _, name = repository.lower().partition("/")
    readable_owner = _readable(owner) or "x"
    readable_name = _readable(name)[: SLUG_MAX - HASH_LENGTH - 1].rstrip("-") or "x"
    return f"{registry.rstrip('/')}/{readable_owner}/{readable_name}-{short_hash(repository.lower())}"


def registry_secret(repository: str) -> str:
    """The Secret in the build namespace holding this repository's own registry push credentials."""
    return f"{REGISTRY_SECRET_PREFIX}{slug(repository.lower())}"
