"""The composition root: the one place that picks the adapters the use cases run with.

The web factory, the worker, the scheduler, the MCP server and the tests all call
`bootstrap`; a test hands in the adapter it wants in place of the real one. Nothing else
in `app/` constructs an adapter.
"""

from __future__ import annotations

import logging
import os

import redis

from app.adapters.counters import RedisCounters
from app.adapters.gitea import Gitea
from app.adapters.jobqueue import JobQueue
from app.adapters.routes import IngressRoutes
from app.adapters.sql_admin import admins
from app.adapters.traffic import TraefikTraffic
from app.db import open_database
from app.settings import Settings
from app.usecases.ports import (
    Cluster,
    ClusterNotConfigured,
    Counters,
    GiteaApi,
    NoGitea,
    NoRoutes,
    NoTraffic,
    Queue,
    Services,
    SessionStore,
    SignInProvider,
    Traffic,
)

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Short timeouts keep a webhook answer well inside Gitea's 5 s budget when Redis is down.
REDIS_TIMEOUT = 2.0


def configure_logging() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), format=LOG_FORMAT)


def bootstrap(
    settings: Settings,
    *,
    kube: Cluster | None = None,
    gitea: GiteaApi | None = None,
    queue: Queue | None = None,
    sessions: SessionStore | None = None,
    counters: Counters | None = None,
) -> Services:
    """The services for `settings`; each adapter given replaces the one the settings name.

    Gitea is `NoGitea` without GITEA_URL; the cluster is connected on first use."""
    connection = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
    )
    if queue is None:
        timeout = int(settings.job_timeout.total_seconds())
        queue = JobQueue(settings.redis_url, settings.queue_name, job_timeout=timeout, connection=connection)
    return Services(
        settings=settings,
        gitea=gitea if gitea is not None else gitea_client(settings),
        queue=queue,
        counters=counters if counters is not None else RedisCounters(connection),
        sessions=sessions if sessions is not None else connection,
        shared_databases=admins,
        connect_cluster=(lambda: kube) if kube is not None else (lambda: connect_cluster(settings)),
        traffic=traffic_counters(settings),
        routes=IngressRoutes(settings.ingress_url) if settings.ingress_url else NoRoutes(),
    )


def traffic_counters(settings: Settings) -> Traffic:
    """The data plane's request counters, if the settings say where they are."""
    if settings.traffic_metrics_url is None:
        return NoTraffic()
    return TraefikTraffic(settings.traffic_metrics_url)  # the one data plane read so far


def start(settings: Settings, *, pooled: bool = False) -> Services:
    """A process's start: its database bound (`pooled`: see open_database), then its services."""
    if settings.access == "public":
        log.warning("PREVIEW_ACCESS=public: every preview is open to anyone who has its URL (demos only)")
    open_database(settings.database_url, pooled)
    return bootstrap(settings)


def gitea_client(settings: Settings) -> GiteaApi:
    return Gitea(settings.gitea_url, settings.gitea_token) if settings.gitea_url else NoGitea()


def connect_cluster(settings: Settings) -> Cluster:
    """The Kubernetes adapter, from KUBECONFIG or the in-cluster service account."""
    from app.adapters.kube import Kube, load_configuration  # the client costs seconds to import

    try:
        configuration = load_configuration(settings.kubeconfig)
    except Exception as error:  # the kubernetes client raises its own ConfigException or OSError
        raise ClusterNotConfigured(f"no Kubernetes cluster: set KUBECONFIG or run in a cluster ({error})") from error
    return Kube(configuration)


def sign_in(settings: Settings, callback_path: str) -> SignInProvider | None:
    """Gitea's OAuth2 sign-in, returning to `callback_path`; None when it is not configured."""
    from app.adapters.gitea_oauth import GiteaOAuth

    if not (settings.gitea_url and settings.oauth_client_id and settings.oauth_client_secret):
        return None
    return GiteaOAuth(
        settings.gitea_url,
        settings.oauth_client_id,
        settings.oauth_client_secret,
        f"{settings.public_url}{callback_path}",
    )
