"""A build: the kaniko Job that builds a commit (its fetch-source init container holds the git
credentials, the build never does), and the build namespace's quota and network policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.domain.k8s.isolation import Opening, egress_rules
from app.domain.k8s.labels import LABEL_MANAGED_BY, LABEL_SHA, MANAGED_BY, PreviewSpec, labels

GIT_CREDENTIALS_SECRET = "git-credentials"
REGISTRY_CREDENTIALS_SECRET = "registry-credentials"
# One kaniko build: millicores and GiB it requests, and its limits.
BUILD_CPU_REQUEST_M, BUILD_MEMORY_REQUEST_GI = 500, 1
BUILD_CPU_LIMIT_M, BUILD_MEMORY_LIMIT_GI = 2000, 4
BUILD_REQUESTS = {"cpu": f"{BUILD_CPU_REQUEST_M}m", "memory": f"{BUILD_MEMORY_REQUEST_GI}Gi"}
BUILD_LIMITS = {"cpu": f"{BUILD_CPU_LIMIT_M}m", "memory": f"{BUILD_MEMORY_LIMIT_GI}Gi"}


@dataclass(frozen=True)
class BuildPolicy:
    namespace: str  # BUILD_NAMESPACE: every build runs there, never in a preview's namespace
    source_image: str  # fetch-source (git)
    builder_image: str  # kaniko
    registry_insecure: bool  # a plain-HTTP registry (the test bed's)
    timeout_seconds: int
    concurrency: int  # builds at once: the build namespace's quota
    denied_cidrs: tuple[str, ...]
    opening: Opening  # Gitea's and the registry's ports on BUILD_EGRESS_ALLOWED_CIDRS


def _url_port(url: str) -> int:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    return parts.port or (80 if parts.scheme == "http" else 443)


def build_opening(
    allowed_cidrs: tuple[str, ...], gitea_url: str | None, registry: str | None, insecure: bool
) -> Opening:
    """What builds reach beyond the internet: Gitea's and the registry's ports on `allowed_cidrs`."""
    ports = set()
    if gitea_url:
        ports.add(_url_port(gitea_url))
    if registry:
        host = registry.split("/", 1)[0]
        ports.add(_url_port(host))
        if insecure and ":" not in host:
            ports.add(80)
    return Opening(allowed_cidrs, tuple(sorted(ports)))


# The fetch-source init container: the exact commit into the shared volume, then no
# trace of git (nor of the credentials, which only ever live in this container's env).
# The repository lives beside the build context, never in it: the context is an emptyDir the
# kubelet made (owned by root), and this container runs unprivileged. With GIT_DIR given, git
# does not search for a repository, so it does not refuse a work tree it does not own; and
# nothing of the fetch (its URL, its config) reaches the build.
FETCH_SOURCE_SCRIPT = """set -eu
export GIT_DIR="$HOME/source.git" GIT_WORK_TREE="$WORKSPACE"
git init -q
fetch() {
  git -c 'credential.helper=!f() { echo "username=${GIT_USERNAME:-}"; echo "password=${GIT_PASSWORD:-}"; }; f' \\
    fetch -q --no-tags --depth="$1" "$SOURCE_URL" "$2"
}
# The commit itself; servers that refuse a bare sha get the ref, deep enough to hold it.
fetch 1 "$SOURCE_SHA" || fetch 50 "$SOURCE_REF"
git -c advice.detachedHead=false checkout -q "$SOURCE_SHA"
"""
SOURCE_DIR = "/workspace"


@dataclass(frozen=True)
class BuildSpec:
    job_name: str
    namespace: str
    clone_url: str
    git_ref: str  # refs/pull/<n>/head for a PR, refs/heads/<branch> for a branch
    destination: str  # <registry>/<repo>:<tag>
    cache_repository: str | None  # None: no layer cache (an untrusted build must not poison it)
    dockerfile: str = "Dockerfile"  # relative to the context
    pod_labels: dict[str, str] = field(default_factory=dict)
    registry_secret: str = REGISTRY_CREDENTIALS_SECRET  # the repository's own when the operator made one
    context: str = "."  # a directory of the repository
    target: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)

    @property
    def context_dir(self) -> str:
        return SOURCE_DIR if self.context == "." else f"{SOURCE_DIR}/{self.context}"


_UNPRIVILEGED = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def _fetch_source_container(build: BuildSpec, policy: BuildPolicy, sha: str) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "SOURCE_URL", "value": build.clone_url},
        {"name": "SOURCE_REF", "value": build.git_ref},
        {"name": "SOURCE_SHA", "value": sha},
        {"name": "WORKSPACE", "value": SOURCE_DIR},
        {"name": "HOME", "value": "/tmp"},
        {"name": "GIT_TERMINAL_PROMPT", "value": "0"},
    ]
    for variable, key in (("GIT_USERNAME", "username"), ("GIT_PASSWORD", "password")):
        secret = {"name": GIT_CREDENTIALS_SECRET, "key": key, "optional": True}
        env.append({"name": variable, "valueFrom": {"secretKeyRef": secret}})
    return {
        "name": "fetch-source",
        "image": policy.source_image,
        "command": ["/bin/sh", "-c", FETCH_SOURCE_SCRIPT],
        "env": env,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": _UNPRIVILEGED,
        "volumeMounts": [{"name": "source", "mountPath": SOURCE_DIR}],
    }


def build_job(spec: PreviewSpec, build: BuildSpec, policy: BuildPolicy, sha: str | None = None) -> dict[str, Any]:
    """A kaniko Job that builds what the fetch-source init container checked out.

    The container that runs the Dockerfile holds no git credential: only the
    source directory and the registry push configuration (which `RUN` can read).
    """
    args = [
        f"--context=dir://{build.context_dir}",
        f"--dockerfile={build.context_dir}/{build.dockerfile}",
        f"--destination={build.destination}",
        *(["--cache=true", f"--cache-repo={build.cache_repository}"] if build.cache_repository else ["--cache=false"]),
        "--digest-file=/dev/termination-log",
    ]
    if build.target:
        args.append(f"--target={build.target}")
    args += [f"--build-arg={name}={value}" for name, value in sorted(build.build_args.items())]
    if policy.registry_insecure:
        registry_host = build.destination.split("/", 1)[0]
        args += ["--insecure", "--insecure-pull", f"--insecure-registry={registry_host}"]
    sha = sha or spec.head_sha
    job_labels = {**labels(spec, "build"), LABEL_SHA: sha[:12]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": build.job_name, "namespace": build.namespace, "labels": job_labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": policy.timeout_seconds,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": {**job_labels, **build.pod_labels}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "initContainers": [_fetch_source_container(build, policy, sha)],
                    "containers": [
                        {
                            "name": "kaniko",
                            "image": policy.builder_image,
                            "args": args,
                            "resources": {"requests": BUILD_REQUESTS, "limits": BUILD_LIMITS},
                            "terminationMessagePolicy": "File",
                            "volumeMounts": [
                                {"name": "source", "mountPath": SOURCE_DIR},
                                {"name": "docker-config", "mountPath": "/kaniko/.docker", "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "source", "emptyDir": {"sizeLimit": "2Gi"}},
                        {
                            "name": "docker-config",
                            "secret": {
                                "secretName": build.registry_secret,
                                "optional": True,
                                "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                            },
                        },
                    ],
                },
            },
        },
    }


def build_network_policy(policy: BuildPolicy) -> dict[str, Any]:
    """Builds take no connections, and reach out only like previews do, plus the registry and Gitea."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "build-isolation",
            "namespace": policy.namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY},
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress_rules(policy.denied_cidrs, policy.opening),
        },
    }


def build_quota(policy: BuildPolicy) -> dict[str, Any]:
    """Room for BUILD_CONCURRENCY builds at once; a build beyond that waits for a pod to finish."""
    builds = policy.concurrency
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {
            "name": "build-quota",
            "namespace": policy.namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY},
        },
        "spec": {
            "hard": {
                "pods": str(builds),
                "requests.cpu": f"{BUILD_CPU_REQUEST_M * builds}m",
                "requests.memory": f"{BUILD_MEMORY_REQUEST_GI * builds}Gi",
                "limits.cpu": f"{BUILD_CPU_LIMIT_M * builds}m",
                "limits.memory": f"{BUILD_MEMORY_LIMIT_GI * builds}Gi",
            }
        },
    }


def build_namespace(policy: BuildPolicy) -> dict[str, Any]:
    """kaniko runs as root: baseline, never restricted. No managed-by label: the chart's Helm
    release owns this namespace and its `app.kubernetes.io/managed-by: Helm`, which a forced
    apply of ours would take over (and Helm would then refuse to upgrade). The admission
    policies know it by its name."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": policy.namespace, "labels": {"pod-security.kubernetes.io/enforce": "baseline"}},
    }
