"""A preview's database: its names, how the app connects, and the Kubernetes objects
for the in-namespace server and the migrate and seed Jobs. Pure functions.

Shared mode (the operator gave an admin URL): a database and a role named
`<prefix><preview id>` on the operator's server. In-namespace mode: a StatefulSet
of the official image, with its volume, a Service and the same Secret shape.
Either way the app reads DATABASE_URL and the engine's usual variables from the
Secret `preview-database`, never from plain env.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from app.domain import manifests
from app.domain.manifests import APP_LIMITS, APP_REQUESTS, AppSpec, PreviewSpec
from app.domain.naming import SHORT_SHA, short_hash
from app.settings import Settings

SECRET = "preview-database"
SERVER = "database"  # the in-namespace StatefulSet and its Service
SHARED, IN_NAMESPACE = "shared", "in-namespace"
PORTS = {"postgres": 5432, "mysql": 3306}
SERVER_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
SERVER_LIMITS = {"cpu": "500m", "memory": "512Mi"}
TEMPLATE_MARK = "tpl_"


def database_name(prefix: str, preview_id: int) -> str:
    """The database and its role: one name, <prefix><id>, short enough for MySQL's 32-character users."""
    return f"{prefix}{preview_id}"


def owner_id(prefix: str, name: str) -> int | None:
    """The preview a database name belongs to; None for names that are not a preview's."""
    match = re.fullmatch(re.escape(prefix) + r"(\d+)", name)
    return int(match.group(1)) if match else None


def template_name(prefix: str, repository: str, base_sha: str) -> str:
    """One template per repository and base commit: <prefix>tpl_<repository hash>_<sha12>."""
    return f"{prefix}{TEMPLATE_MARK}{short_hash(repository.lower(), 12)}_{base_sha[:SHORT_SHA].lower()}"


def is_template(prefix: str, name: str) -> bool:
    return re.fullmatch(re.escape(prefix + TEMPLATE_MARK) + r"[0-9a-f]{12}_[0-9a-f]{1,12}", name) is not None


@dataclass(frozen=True)
class Connection:
    engine: str
    host: str
    port: int
    name: str
    user: str
    password: str

    def url(self) -> str:
        scheme = "postgresql" if self.engine == "postgres" else "mysql"
        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"{scheme}://{credentials}@{self.host}:{self.port}/{quote(self.name, safe='')}"

    def env(self) -> dict[str, str]:
        """DATABASE_URL and the variables the engine's own clients read."""
        if self.engine == "postgres":
            own = {"PGHOST": self.host, "PGPORT": str(self.port), "PGDATABASE": self.name, "PGUSER": self.user}
            own["PGPASSWORD"] = self.password
        else:
            own = {"MYSQL_HOST": self.host, "MYSQL_TCP_PORT": str(self.port), "MYSQL_DATABASE": self.name}
            own |= {"MYSQL_USER": self.user, "MYSQL_PASSWORD": self.password, "MYSQL_PWD": self.password}
        return {"DATABASE_URL": self.url(), **own}


def secret(spec: PreviewSpec, connection: Connection, mode: str, name: str = SECRET) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": manifests.object_meta(
            spec, name, "database", annotations={f"{manifests.PREFIX}/database-mode": mode}
        ),
        "stringData": connection.env(),
    }


def server_image(settings: Settings, engine: str, version: str | None) -> str:
    image = settings.postgres_image if engine == "postgres" else settings.mysql_image
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


def server_objects(spec: PreviewSpec, settings: Settings, connection: Connection, image: str) -> list[dict[str, Any]]:
    """The in-namespace server: a one-pod StatefulSet with its own volume, and its Service."""
    selector = {"app.kubernetes.io/instance": spec.names.slug, manifests.LABEL_COMPONENT: "database"}
    claim: dict[str, Any] = {
        "metadata": {"name": "data", "labels": manifests.labels(spec, "database")},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": settings.database_storage}}},
    }
    if settings.database_storage_class:
        claim["spec"]["storageClassName"] = settings.database_storage_class
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": manifests.object_meta(spec, SERVER, "database"),
            "spec": {
                "serviceName": SERVER,
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": manifests.labels(spec, "database")},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "containers": [_server_container(connection, image)],
                    },
                },
                "volumeClaimTemplates": [claim],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": manifests.object_meta(spec, SERVER, "database"),
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "database", "port": connection.port, "targetPort": "database"}],
            },
        },
    ]


def job_name(kind: str, sha: str) -> str:
    return f"{kind}-{sha[:SHORT_SHA]}"


def command_job(
    spec: PreviewSpec,
    app: AppSpec,
    settings: Settings,
    kind: str,
    command: tuple[str, ...],
    sha: str,
    secret_name: str = SECRET,
) -> dict[str, Any]:
    """A Job running `command` in `app.image` with the app's env and the database Secret:
    kind is `migrate` (every deploy, before the rollout) or `seed` (once)."""
    job_labels = {**manifests.labels(spec, kind), manifests.LABEL_SHA: sha[:SHORT_SHA]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(kind, sha), "namespace": spec.names.namespace, "labels": job_labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(settings.rollout_timeout.total_seconds()),
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
                            "resources": {
                                "requests": {**APP_REQUESTS, **app.requests},
                                "limits": {**APP_LIMITS, **app.limits},
                            },
                            "securityContext": {"allowPrivilegeEscalation": False},
                            # The last lines of its output, for the status when it fails.
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                        }
                    ],
                },
            },
        },
    }
