"""Kubernetes objects for one preview, as plain dicts from pure functions.

Nothing here talks to a cluster; the pipeline applies these with server-side
apply. Tests compare the dicts.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from app.domain.naming import PreviewNames
from app.settings import Settings

MANAGED_BY = "gitea-previews"
PREFIX = "previews.gitea.io"
LABEL_PREVIEW_ID = f"{PREFIX}/preview-id"
LABEL_REPOSITORY = f"{PREFIX}/repository"
LABEL_PR = f"{PREFIX}/pr"
LABEL_BRANCH = f"{PREFIX}/branch"
LABEL_SHA = f"{PREFIX}/sha"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
GIT_CREDENTIALS_SECRET = "git-credentials"
REGISTRY_CREDENTIALS_SECRET = "registry-credentials"
AUTH_REALM = "Preview environment"

# Container defaults (the seed's): a small web app.
APP_REQUESTS = {"cpu": "100m", "memory": "128Mi"}
APP_LIMITS = {"cpu": "500m", "memory": "512Mi"}
# Scratch space (emptyDir, logs, a container's writable layer) per container unless it says:
# a preview must not fill the node's disk.
EPHEMERAL_REQUEST = {"ephemeral-storage": "128Mi"}
EPHEMERAL_LIMIT = {"ephemeral-storage": "1Gi"}
# One kaniko build: millicores and GiB it requests, and its limits.
BUILD_CPU_REQUEST_M, BUILD_MEMORY_REQUEST_GI = 500, 1
BUILD_CPU_LIMIT_M, BUILD_MEMORY_LIMIT_GI = 2000, 4
BUILD_REQUESTS = {"cpu": f"{BUILD_CPU_REQUEST_M}m", "memory": f"{BUILD_MEMORY_REQUEST_GI}Gi"}
BUILD_LIMITS = {"cpu": f"{BUILD_CPU_LIMIT_M}m", "memory": f"{BUILD_MEMORY_LIMIT_GI}Gi"}


def _time(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat() + "Z"


@dataclass(frozen=True)
class PreviewSpec:
    """What the manifests need to know about one preview at one commit."""

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


@dataclass(frozen=True)
class ExtraServiceSpec:
    """A public image the app talks to (redis, a mail catcher), reachable at `name:port`."""

    name: str
    image: str
    port: int
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AppSpec:
    """How to run the repository's app; from its settings and its preview file."""

    image: str  # pinned by digest when built here
    port: int = 8080
    health_path: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    pod_labels: dict[str, str] = field(default_factory=dict)
    replicas: int = 1
    requests: dict[str, str] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)
    # A Secret whose keys become variables (DATABASE_URL and the engine's own): never plain env.
    env_secret: str | None = None
    services: tuple[ExtraServiceSpec, ...] = ()

    def container_env(self, spec: PreviewSpec) -> list[dict[str, Any]]:
        env = [
            {"name": "PREVIEW_MODE", "value": "true"},
            {"name": "PREVIEW_URL", "value": spec.url},
            # The commit the image was built from: an app can show which version a reviewer sees.
            {"name": "PREVIEW_COMMIT", "value": spec.head_sha},
        ]
        return env + [{"name": key, "value": str(value)} for key, value in sorted(self.env.items())]

    def env_from(self) -> list[dict[str, Any]]:
        return [{"secretRef": {"name": self.env_secret}}] if self.env_secret else []


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


def namespace(spec: PreviewSpec, settings: Settings) -> dict[str, Any]:
    annotations = {
        "created-at": _time(spec.created_at),
        "ttl": f"{int(spec.ttl.total_seconds())}s",
        "expires-at": _time(spec.expires_at),
        f"{PREFIX}/repository": spec.repository,
        f"{PREFIX}/branch": spec.branch,
        f"{PREFIX}/head-sha": spec.head_sha,
    }
    if spec.pr_url:
        annotations[f"{PREFIX}/pr-url"] = spec.pr_url
    level = settings.pod_security_level
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": spec.names.namespace,
            "labels": {
                **labels(spec),
                "pod-security.kubernetes.io/enforce": level,
                "pod-security.kubernetes.io/warn": level,
            },
            "annotations": annotations,
        },
    }


def role_bindings(spec: PreviewSpec, settings: Settings) -> list[dict[str, Any]]:
    """The service's own rights in this namespace: its worker's (to make the preview) and its
    web's (to read the password and the pods). Granted here and nowhere else."""
    grants = (
        ("gitea-previews-worker", settings.preview_cluster_role, settings.controller_service_account),
        ("gitea-previews-web", settings.preview_reader_cluster_role, settings.web_service_account),
    )
    bindings = []
    for name, role, account in grants:
        if not (role and account):
            continue
        account_namespace, _, account_name = account.partition("/")
        bindings.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": spec.names.namespace, "labels": labels(spec)},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": account_name, "namespace": account_namespace}],
            }
        )
    return bindings


def resource_quota(spec: PreviewSpec, settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": object_meta(spec, "preview-quota"),
        "spec": {
            "hard": {
                "requests.cpu": settings.quota_requests_cpu,
                "requests.memory": settings.quota_requests_memory,
                "limits.cpu": settings.quota_limits_cpu,
                "limits.memory": settings.quota_limits_memory,
                "limits.ephemeral-storage": settings.quota_ephemeral_storage,
                "pods": str(settings.quota_pods),
                "services": str(settings.quota_services),
            }
        },
    }


def limit_range(spec: PreviewSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": object_meta(spec, "preview-limits"),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "defaultRequest": {**APP_REQUESTS, **EPHEMERAL_REQUEST},
                    "default": {**APP_LIMITS, **EPHEMERAL_LIMIT},
                }
            ]
        },
    }


@dataclass(frozen=True)
class Opening:
    """An exception to the denied ranges: these addresses, on these TCP ports only."""

    cidrs: tuple[str, ...]
    ports: tuple[int, ...]


def _url_port(url: str) -> int:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    return parts.port or (80 if parts.scheme == "http" else 443)


def build_opening(settings: Settings) -> Opening:
    """What builds reach beyond the internet: Gitea's and the registry's ports on BUILD_EGRESS_ALLOWED_CIDRS."""
    ports = set()
    if settings.gitea_url:
        ports.add(_url_port(settings.gitea_url))
    if settings.preview_registry:
        host = settings.preview_registry.split("/", 1)[0]
        ports.add(_url_port(host))
        if settings.registry_insecure and ":" not in host:
            ports.add(80)
    return Opening(settings.build_egress_allowed_cidrs, tuple(sorted(ports)))


def egress_rules(settings: Settings, opening: Opening | None = None) -> list[dict[str, Any]]:
    """DNS, the namespace itself and the internet; not the denied ranges (metadata addresses, cluster,
    API server), except `opening`'s addresses on its ports."""
    anywhere = []
    for everything in ("0.0.0.0/0", "::/0"):
        version = ipaddress.ip_network(everything).version
        denied = [c for c in settings.egress_denied_cidrs if ipaddress.ip_network(c).version == version]
        anywhere.append({"ipBlock": {"cidr": everything, "except": denied} if denied else {"cidr": everything}})
    rules: list[dict[str, Any]] = [
        {
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        {"to": [{"podSelector": {}}]},
        {"to": anywhere},
    ]
    if opening is not None and opening.cidrs and opening.ports:
        rules.append(
            {
                "to": [{"ipBlock": {"cidr": cidr}} for cidr in opening.cidrs],
                "ports": [{"protocol": "TCP", "port": port} for port in opening.ports],
            }
        )
    return rules


def network_policy(spec: PreviewSpec, settings: Settings, opening: Opening | None = None) -> dict[str, Any]:
    """Admit traffic only from this namespace and from the ingress controller's; let out only
    what egress_rules says (and `opening`: a shared database server's port)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(spec, "preview-isolation"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "egress": egress_rules(settings, opening),
            "ingress": [
                {
                    "from": [
                        {"podSelector": {}},
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": settings.ingress_controller_namespace}
                            }
                        },
                    ]
                }
            ],
        },
    }


def deployment(spec: PreviewSpec, app: AppSpec) -> dict[str, Any]:
    selector = {"app.kubernetes.io/instance": spec.names.slug, LABEL_COMPONENT: "app"}
    container: dict[str, Any] = {
        "name": "app",
        "image": app.image,
        "securityContext": {"allowPrivilegeEscalation": False},
        "ports": [{"name": "http", "containerPort": app.port}],
        "env": app.container_env(spec),
        "resources": {"requests": {**APP_REQUESTS, **app.requests}, "limits": {**APP_LIMITS, **app.limits}},
        "readinessProbe": {
            "httpGet": {"path": app.health_path, "port": "http"},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
    }
    if app.env_secret:
        container["envFrom"] = app.env_from()
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(spec, spec.names.app, "app"),
        "spec": {
            "replicas": app.replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": {**labels(spec, "app"), **app.pod_labels},
                    "annotations": {f"{PREFIX}/head-sha": spec.head_sha},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                },
            },
        },
    }


def extra_service_objects(spec: PreviewSpec, extra: ExtraServiceSpec) -> list[dict[str, Any]]:
    """A Deployment and a Service named after the extra service, so the app reaches it at name:port."""
    component = f"service-{extra.name}"
    selector = {"app.kubernetes.io/instance": spec.names.slug, LABEL_COMPONENT: component}
    env = [{"name": key, "value": value} for key, value in sorted(extra.env.items())]
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": object_meta(spec, extra.name, component),
            "spec": {
                "replicas": 1,
                "revisionHistoryLimit": 2,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels(spec, component)},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "containers": [
                            {
                                "name": extra.name,
                                "image": extra.image,
                                "env": env,
                                "ports": [{"name": "service", "containerPort": extra.port}],
                                "securityContext": {"allowPrivilegeEscalation": False},
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": object_meta(spec, extra.name, component),
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "service", "port": extra.port, "targetPort": "service"}],
            },
        },
    ]


def service(spec: PreviewSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(spec, spec.names.app, "app"),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/instance": spec.names.slug, LABEL_COMPONENT: "app"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def ingress(spec: PreviewSpec, settings: Settings) -> dict[str, Any]:
    annotations = {
        "nginx.ingress.kubernetes.io/auth-type": "basic",
        "nginx.ingress.kubernetes.io/auth-secret": spec.names.auth_secret,
        "nginx.ingress.kubernetes.io/auth-secret-type": "auth-file",
        "nginx.ingress.kubernetes.io/auth-realm": AUTH_REALM,
    }
    body: dict[str, Any] = {
        "ingressClassName": settings.ingress_class,
        "rules": [
            {
                "host": spec.names.host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": spec.names.app, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ],
    }
    if settings.cert_manager_issuer:
        annotations["cert-manager.io/cluster-issuer"] = settings.cert_manager_issuer
    if settings.ingress_tls_secret or settings.cert_manager_issuer:
        secret = settings.ingress_tls_secret or f"{spec.names.slug}-tls"
        body["tls"] = [{"hosts": [spec.names.host], "secretName": secret}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": object_meta(spec, spec.names.app, "app", annotations=annotations),
        "spec": body,
    }


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


def _fetch_source_container(build: BuildSpec, settings: Settings, sha: str) -> dict[str, Any]:
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
        "image": settings.source_image,
        "command": ["/bin/sh", "-c", FETCH_SOURCE_SCRIPT],
        "env": env,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": _UNPRIVILEGED,
        "volumeMounts": [{"name": "source", "mountPath": SOURCE_DIR}],
    }


def build_job(spec: PreviewSpec, build: BuildSpec, settings: Settings, sha: str | None = None) -> dict[str, Any]:
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
    if settings.registry_insecure:
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
            "activeDeadlineSeconds": int(settings.build_timeout.total_seconds()),
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": {**job_labels, **build.pod_labels}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "initContainers": [_fetch_source_container(build, settings, sha)],
                    "containers": [
                        {
                            "name": "kaniko",
                            "image": settings.builder_image,
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


def build_network_policy(settings: Settings) -> dict[str, Any]:
    """Builds take no connections, and reach out only like previews do, plus the registry and Gitea."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "build-isolation",
            "namespace": settings.build_namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY},
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress_rules(settings, build_opening(settings)),
        },
    }


def build_quota(settings: Settings) -> dict[str, Any]:
    """Room for BUILD_CONCURRENCY builds at once; a build beyond that waits for a pod to finish."""
    builds = settings.build_concurrency
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {
            "name": "build-quota",
            "namespace": settings.build_namespace,
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


def build_namespace(settings: Settings) -> dict[str, Any]:
    """kaniko runs as root: baseline, never restricted. No managed-by label: the chart's Helm
    release owns this namespace and its `app.kubernetes.io/managed-by: Helm`, which a forced
    apply of ours would take over (and Helm would then refuse to upgrade). The admission
    policies know it by its name."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": settings.build_namespace, "labels": {"pod-security.kubernetes.io/enforce": "baseline"}},
    }


def access_objects(spec: PreviewSpec, settings: Settings) -> list[dict[str, Any]]:
    """The namespace and the service's rights in it: applied first, everything else needs them."""
    return [namespace(spec, settings), *role_bindings(spec, settings)]


def guard_objects(spec: PreviewSpec, settings: Settings, opening: Opening | None = None) -> list[dict[str, Any]]:
    """Quota, limits and isolation: applied before anything runs in the namespace."""
    return [resource_quota(spec, settings), limit_range(spec), network_policy(spec, settings, opening)]


def workload_objects(spec: PreviewSpec, app: AppSpec) -> list[dict[str, Any]]:
    """The app and its extra services, in the order to apply them (routing.py puts the way in front)."""
    extras = [obj for extra in app.services for obj in extra_service_objects(spec, extra)]
    return [*extras, deployment(spec, app), service(spec)]
