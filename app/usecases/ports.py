"""What the use cases need from the world, as `typing.Protocol`s: the cluster, Gitea, the job
queue, the session store, the shared counters, Gitea's sign-in. The adapters in `app/adapters/`
satisfy them; `app/bootstrap.py` picks which; a test can hand in its own.

The values and errors that cross a port live here too, so that a use case never imports an
adapter (and through it `kubernetes`, `requests`, `rq` or `redis`): `make lint`'s import
contracts hold that line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from app.domain.databases import Connection
from app.domain.k8s.diagnosis import RolloutOutcome

if TYPE_CHECKING:
    from app.settings import Settings

# Gitea truncates longer commit status descriptions; ours stay readable.
DESCRIPTION_MAX = 140
STATUS_CONTEXT = "preview"


class GiteaError(Exception):
    """A Gitea call failed. `status` is the HTTP status, or None when Gitea was not reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GiteaNotConfigured(GiteaError):
    """GITEA_URL is not set: there is no Gitea to ask or to tell."""


class KubeError(Exception):
    """A Kubernetes call failed. `status` is the HTTP status, or None when the server was not reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ClusterNotConfigured(Exception):
    """Neither KUBECONFIG nor an in-cluster service account is available."""


class QueueUnavailable(Exception):
    """Redis could not be reached; the caller keeps the work in the outbox."""


class SqlAdminError(Exception):
    """A shared database server could not do what was asked (or could not be reached)."""


class CountersUnavailable(Exception):
    """The shared counters (Redis) could not be read or written."""


@dataclass(frozen=True)
class JobInfo:
    name: str
    uid: str
    state: str | None  # complete | failed | None while running


@dataclass(frozen=True)
class NamespaceInfo:
    name: str
    labels: dict[str, str]
    created_at: datetime | None  # naive UTC, like the database's
    terminating: bool


@dataclass(frozen=True)
class JobOutcome:
    state: str  # complete | failed | missing | timeout | stopped
    message: str = ""  # the pod's termination message (kaniko writes the digest there)
    reason: str = ""


class Cluster(Protocol):
    """Kubernetes, as the pipeline and the scheduler use it (app/adapters/kube.py)."""

    def close(self) -> None: ...
    def apply(self, obj: dict[str, Any]) -> dict[str, Any]: ...
    def apply_all(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]: ...
    def wait_until_allowed(
        self, namespace: str, verb: str, resource: str, group: str = "", timeout: float = 15
    ) -> bool: ...
    def read_secret_data(self, namespace: str, name: str) -> dict[str, str] | None: ...
    def delete_object(self, api_version: str, kind: str, namespace: str, name: str) -> bool: ...
    def scale_to_zero(self, namespace: str, label_selector: str, note: str) -> int: ...
    def scale_back(self, namespace: str, label_selector: str, note: str) -> int: ...
    def delete_secret(self, namespace: str, name: str) -> bool: ...
    def delete_namespace(self, name: str) -> bool: ...
    def settled_namespace_labels(self, name: str, timeout: float) -> dict[str, str] | None: ...
    def namespace_labels(self, name: str) -> dict[str, str] | None: ...
    def list_namespaces(self, label_selector: str) -> list[NamespaceInfo]: ...
    def list_jobs(self, namespace: str, label_selector: str) -> list[JobInfo]: ...
    def delete_job(self, namespace: str, name: str) -> bool: ...
    def replace_job(self, job: dict[str, Any], recreate: bool = False, timeout: float = 60.0) -> None: ...
    def wait_for_job(
        self,
        namespace: str,
        name: str,
        timeout: float,
        should_stop: Callable[[], bool] | None = None,
        quota_refusal_is_final: bool = False,
        single_pod: bool = False,
    ) -> JobOutcome: ...
    def pod_log_tail(self, namespace: str, label_selector: str, lines: int = 100) -> str: ...
    def pod_log(self, namespace: str, label_selector: str, limit_bytes: int) -> str: ...
    def wait_for_rollout(
        self,
        namespace: str,
        name: str,
        timeout: float,
        should_stop: Callable[[], bool] | None = None,
        applied: dict[str, Any] | None = None,
    ) -> RolloutOutcome: ...
    def wait_for_statefulset(
        self, namespace: str, name: str, timeout: float, should_stop: Callable[[], bool] | None = None
    ) -> bool: ...


class GiteaApi(Protocol):
    """Gitea's REST API with the service's bot token (app/adapters/gitea.py).

    `configured` is False only for `NoGitea`: the use cases that have a policy for "no Gitea
    to ask" (take the payload's word, report nothing) read it; every call raises then."""

    configured: bool

    def current_login(self) -> str: ...
    def set_status(
        self,
        repository: str,
        sha: str,
        state: str,
        target_url: str | None,
        description: str,
        context: str = STATUS_CONTEXT,
    ) -> dict[str, Any]: ...
    def latest_status(self, repository: str, sha: str, context: str = STATUS_CONTEXT) -> dict[str, Any] | None: ...
    def comments(self, repository: str, number: int, page_size: int = 50) -> list[dict[str, Any]]: ...
    def find_comment(self, repository: str, number: int, marker: str) -> dict[str, Any] | None: ...
    def upsert_comment(self, repository: str, number: int, marker: str, body: str) -> int: ...
    def add_comment_attachment(
        self, repository: str, comment_id: int, name: str, content: bytes, media_type: str = "image/png"
    ) -> dict[str, Any]: ...
    def delete_comment_attachment(self, repository: str, comment_id: int, attachment_id: int) -> None: ...
    def branch_head(self, repository: str, branch: str) -> str | None: ...
    def pull_request(self, repository: str, number: int) -> dict[str, Any] | None: ...
    def file_at(self, repository: str, path: str, ref: str) -> bytes | None: ...
    def permission(self, repository: str, login: str) -> str | None: ...
    def issue_labels(self, repository: str, number: int) -> list[dict[str, Any]]: ...
    def remove_label(self, repository: str, number: int, name: str) -> bool: ...
    def hooks(self, repository: str) -> list[dict[str, Any]]: ...
    def save_hook(
        self, repository: str, url: str, secret: str, events: list[str], hook_id: int | None = None
    ) -> int: ...
    def delete_hook(self, repository: str, hook_id: int) -> None: ...
    def repository(self, repository: str) -> dict[str, Any] | None: ...
    def repository_by_id(self, gitea_id: int) -> dict[str, Any] | None: ...


class NoGitea:
    """The Gitea of a service without GITEA_URL: it says so, in one place, on every call."""

    configured = False

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def refuse(*_args: Any, **_kwargs: Any) -> Any:
            raise GiteaNotConfigured(f"GITEA_URL is not configured: cannot {name.replace('_', ' ')}")

        return refuse


class Queue(Protocol):
    """The job queue (app/adapters/jobqueue.py); QueueUnavailable when Redis cannot be reached."""

    @property
    def job_ids(self) -> list[str]: ...
    def enqueue(
        self, func: str, *args: object, job_id: str, timeout: int | None = None, keep_result: bool = True
    ) -> bool: ...
    def enqueue_in(self, seconds: float, func: str, *args: object, job_id: str, timeout: int | None = None) -> bool: ...
    def waiting_job_ids(self) -> set[str]: ...
    def resubmit(
        self, func: str, *args: object, job_id: str, timeout: int | None = None, running_is_lost: bool = False
    ) -> bool: ...
    def ping(self) -> bool: ...
    def depth(self) -> int: ...


class SessionStore(Protocol):
    """Where sign-in sessions live, server-side (a Redis client satisfies it)."""

    def get(self, name: str) -> Any: ...
    def set(self, name: str, value: Any, ex: int | None = None) -> Any: ...
    def delete(self, *names: str) -> Any: ...
    def getdel(self, name: str) -> Any: ...


class Counters(Protocol):
    """Counters every process adds to and /metrics reads (app/adapters/counters.py);
    CountersUnavailable when they cannot be reached."""

    def webhook_refused(self, reason: str) -> None: ...
    def record_sweep(self, removed: dict[str, int], refused: bool) -> None: ...
    def read(self) -> dict[str, Any]: ...


class TrafficUnavailable(Exception):
    """The data plane's counters could not be read: nothing is concluded from them."""


class Traffic(Protocol):
    """Requests the data plane (the ingress controller or gateway) has routed to each of
    some Services, as counters that only grow until the proxy restarts (app/adapters/traffic.py).
    TrafficUnavailable when they cannot be read."""

    def requests_to(self, services: list[tuple[str, str]]) -> dict[tuple[str, str], float]: ...


class NoTraffic:
    """No data plane counters configured: no request is ever seen."""

    def requests_to(self, services: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
        raise TrafficUnavailable("no TRAFFIC_METRICS_URL configured")


class Routes(Protocol):
    """The data plane's answer for a preview's host (app/adapters/routes.py): the HTTP status of
    a GET of `path` through the ingress controller or gateway, None when it gave none."""

    configured: bool

    def status_of(self, host: str, path: str, auth: tuple[str, str] | None) -> int | None: ...


class NoRoutes:
    """No ingress address configured: the data plane is not asked."""

    configured = False

    def status_of(self, host: str, path: str, auth: tuple[str, str] | None) -> int | None:
        return None


class SqlAdmin(Protocol):
    """A shared database server the operator configured (app/adapters/sql_admin.py): one database
    and one role per preview. SqlAdminError for anything that goes wrong."""

    engine: str
    port: int  # where previews reach it

    def ensure(self, name: str, password: str, template: str | None = None) -> bool: ...
    def drop(self, name: str) -> None: ...
    def names(self, prefix: str) -> set[str]: ...
    def size(self, name: str) -> int | None: ...
    def connection(self, name: str, password: str) -> Connection: ...


@runtime_checkable
class TemplateAdmin(SqlAdmin, Protocol):
    """A server that can clone a migrated and seeded template (PostgreSQL)."""

    def is_ready_template(self, name: str) -> bool: ...
    def mark_template(self, name: str) -> None: ...
    def exclusive(self, key: str) -> AbstractContextManager[bool]: ...


class SignInProvider(Protocol):
    """Gitea's OAuth2 sign-in (app/adapters/gitea_oauth.py)."""

    def authorize_url(self, state: str) -> str: ...
    def exchange(self, code: str) -> tuple[str, int]: ...
    def login(self, token: str) -> str: ...
    def permissions(self, token: str, repository: str) -> dict[str, bool]: ...
    def can_read(self, token: str, repository: str) -> bool: ...


@dataclass
class Services:
    """The adapters the use cases run with, made by `app.bootstrap.bootstrap`.

    The cluster is connected on first use: most web requests never read it, and a web
    process without a cluster configured still answers everything else."""

    settings: Settings
    gitea: GiteaApi
    queue: Queue
    counters: Counters
    sessions: SessionStore
    # The shared database servers the settings name, by engine (none without admin URLs).
    shared_databases: Callable[[Settings], dict[str, SqlAdmin]] = field(repr=False)
    connect_cluster: Callable[[], Cluster] = field(repr=False)
    # The data plane's request counters (activity of each preview), when configured.
    traffic: Traffic = field(default_factory=NoTraffic)
    # The data plane's answers for a preview's host (its route reaches the app), when configured.
    routes: Routes = field(default_factory=NoRoutes)

    @functools.cached_property
    def kube(self) -> Cluster:
        """ClusterNotConfigured when there is no cluster to connect to."""
        return self.connect_cluster()
