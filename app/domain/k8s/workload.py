"""The app and its extra services: Deployments and Services, from the repository's settings and
its preview file (AppSpec), at the preview's commit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.domain.k8s.labels import PREFIX, PreviewSpec, labels, object_meta, selector

# Container defaults (the seed's): a small web app.
APP_REQUESTS = {"cpu": "100m", "memory": "128Mi"}
APP_LIMITS = {"cpu": "500m", "memory": "512Mi"}
# Scratch space (emptyDir, logs, a container's writable layer) per container unless it says:
# a preview must not fill the node's disk.
EPHEMERAL_REQUEST = {"ephemeral-storage": "128Mi"}
EPHEMERAL_LIMIT = {"ephemeral-storage": "1Gi"}


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

    def resources(self) -> dict[str, Any]:
        return {"requests": {**APP_REQUESTS, **self.requests}, "limits": {**APP_LIMITS, **self.limits}}


def deployment(spec: PreviewSpec, app: AppSpec) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "image": app.image,
        "securityContext": {"allowPrivilegeEscalation": False},
        "ports": [{"name": "http", "containerPort": app.port}],
        "env": app.container_env(spec),
        "resources": app.resources(),
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
            "selector": {"matchLabels": selector(spec, "app")},
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
    env = [{"name": key, "value": value} for key, value in sorted(extra.env.items())]
    container = {
        "name": extra.name,
        "image": extra.image,
        "env": env,
        "ports": [{"name": "service", "containerPort": extra.port}],
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": object_meta(spec, extra.name, component),
            "spec": {
                "replicas": 1,
                "revisionHistoryLimit": 2,
                "selector": {"matchLabels": selector(spec, component)},
                "template": {
                    "metadata": {"labels": labels(spec, component)},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "containers": [container],
                    },
                },
            },
        },
        cluster_service(spec, extra.name, component, "service", extra.port),
    ]


def cluster_service(spec: PreviewSpec, name: str, component: str, port_name: str, port: int) -> dict[str, Any]:
    """A ClusterIP Service in front of one component's pods, on their named port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(spec, name, component),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(spec, component),
            "ports": [{"name": port_name, "port": port, "targetPort": port_name}],
        },
    }


def service(spec: PreviewSpec) -> dict[str, Any]:
    return cluster_service(spec, spec.names.app, "app", "http", 80)


def workload_objects(spec: PreviewSpec, app: AppSpec) -> list[dict[str, Any]]:
    """The app and its extra services, in the order to apply them (routing puts the way in front)."""
    extras = [obj for extra in app.services for obj in extra_service_objects(spec, extra)]
    return [*extras, deployment(spec, app), service(spec)]
