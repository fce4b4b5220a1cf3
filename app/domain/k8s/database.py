"""A preview's database in its namespace: the Secret the app reads it from, the server (a
one-pod StatefulSet with its volume, and its Service) and the migrate and seed Jobs. The names
and connections (shared or in-namespace) are app/domain/databases.py's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain.databases import Connection
from app.domain.k8s.labels import LABEL_SHA, PREFIX, PreviewSpec, labels, object_meta, secret, selector
from app.domain.k8s.workload import AppSpec, cluster_service
from app.domain.naming import SHORT_SHA

SECRET = "preview-database"
SERVER = "database"  # the in-namespace StatefulSet and its Service
SERVER_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
SERVER_LIMITS = {"cpu": "500m", "memory": "512Mi"}


@dataclass(frozen=True)
class DatabasePolicy:
    postgres_image: str
    mysql_image: str
    storage: str  # the in-namespace server's volume size
    storage_class: str | None
    job_timeout_seconds: int  # a migrate or seed Job's deadline


def connection_secret(spec: PreviewSpec, connection: Connection, mode: str, name: str = SECRET) -> dict[str, Any]:
    """DATABASE_URL and the engine's own variables, for the app (envFrom) and its Jobs."""
    annotations = {f"{PREFIX}/database-mode": mode}
    return secret(spec, name, connection.env(), component="database", annotations=annotations)


def server_image(policy: DatabasePolicy, engine: str, version: str | None) -> str:
    image = policy.postgres_image if engine == "postgres" else policy.mysql_image
    if version is None:
        return image
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repository}:{version}"


def _server_container(connection: Connection, image: str) -> dict[str, Any]:
    def from_secret(key: str) -> dict[str, Any]:
        return {"valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}

    if connection.engine == "postgres":
        env = [
            {"name": "POSTGRES_USER", "value": connection.user},
            {"name": "POSTGRES_DB", "value": connection.name},
            {"name": "POSTGRES_PASSWORD", **from_secret("PGPASSWORD")},
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
        ]
        ready = ["pg_isready", "-h", "127.0.0.1", "-U", connection.user, "-d", connection.name]
        data = "/var/lib/postgresql/data"
    else:
        env = [
            {"name": "MYSQL_USER", "value": connection.user},
            {"name": "MYSQL_DATABASE", "value": connection.name},
            {"name": "MYSQL_PASSWORD", **from_secret("MYSQL_PASSWORD")},
            {"name": "MYSQL_RANDOM_ROOT_PASSWORD", "value": "yes"},
        ]
        ready = ["sh", "-c", 'mysqladmin ping -h 127.0.0.1 -u "$MYSQL_USER" --password="$MYSQL_PASSWORD"']
        data = "/var/lib/mysql"
    return {
        "name": connection.engine,
        "image": image,
        "env": env,
        "ports": [{"name": "database", "containerPort": connection.port}],
        "resources": {"requests": SERVER_REQUESTS, "limits": SERVER_LIMITS},
        "readinessProbe": {"exec": {"command": ready}, "periodSeconds": 5, "failureThreshold": 6},
        "volumeMounts": [{"name": "data", "mountPath": data}],
    }


def server_objects(
    spec: PreviewSpec, policy: DatabasePolicy, connection: Connection, image: str
) -> list[dict[str, Any]]:
    """The in-namespace server: a one-pod StatefulSet with its own volume, and its Service."""
    claim: dict[str, Any] = {
        "metadata": {"name": "data", "labels": labels(spec, "database")},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": policy.storage}}},
    }
    if policy.storage_class:
        claim["spec"]["storageClassName"] = policy.storage_class
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": object_meta(spec, SERVER, "database"),
            "spec": {
                "serviceName": SERVER,
                "replicas": 1,
                "selector": {"matchLabels": selector(spec, "database")},
                "template": {
                    "metadata": {"labels": labels(spec, "database")},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "containers": [_server_container(connection, image)],
                    },
                },
                "volumeClaimTemplates": [claim],
            },
        },
        cluster_service(spec, SERVER, "database", "database", connection.port),
    ]


def job_name(kind: str, sha: str) -> str:
    return f"{kind}-{sha[:SHORT_SHA]}"


def command_job(
    spec: PreviewSpec,
    app: AppSpec,
    policy: DatabasePolicy,
    kind: str,
    command: tuple[str, ...],
    sha: str,
    secret_name: str = SECRET,
) -> dict[str, Any]:
    """A Job running `command` in `app.image` with the app's env and the database Secret:
    kind is `migrate` (every deploy, before the rollout) or `seed` (once)."""
    job_labels = {**labels(spec, kind), LABEL_SHA: sha[:SHORT_SHA]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(kind, sha), "namespace": spec.names.namespace, "labels": job_labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": policy.job_timeout_seconds,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": {**job_labels, **app.pod_labels}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": kind,
                            "image": app.image,
                            "command": list(command),
                            "env": app.container_env(spec),
                            "envFrom": [{"secretRef": {"name": secret_name}}],
                            "resources": app.resources(),
                            "securityContext": {"allowPrivilegeEscalation": False},
                            # The last lines of its output, for the status when it fails.
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                        }
                    ],
                },
            },
        },
    }
