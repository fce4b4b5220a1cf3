"""What every process shares: the adapters the use cases run with (`Services`), the
names of the jobs they queue, and the start-up of logging, database and queue."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import peewee

from app.adapters.gitea import Gitea
from app.adapters.jobqueue import JobQueue
from app.adapters.kube import Kube, load_configuration
from app.db import cooperate_with_gevent, database, open_database
from app.settings import Settings

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# The jobs, by dotted path (the app does not import the workers package).
PROCESS_DELIVERY_JOB = "workers.jobs.process_delivery"
DEPLOY_JOB = "workers.jobs.deploy_preview"
TEARDOWN_JOB = "workers.jobs.teardown_preview"
REPORT_JOB = "workers.jobs.report_preview"


@dataclass
class Services:
    settings: Settings
    kube: Kube
    gitea: Gitea | None = None
    queue: JobQueue | None = None


def configure_logging() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), format=LOG_FORMAT)


def start(settings: Settings, pooled: bool = False) -> tuple[peewee.Database, JobQueue]:
    """What every process needs: the bound database and the job queue (`pooled`: see open_database)."""
    if settings.access == "public":
        log.warning("PREVIEW_ACCESS=public: every preview is open to anyone who has its URL (demos only)")
    db = open_database(settings.database_url, pooled)
    return db, JobQueue(settings.redis_url, settings.queue_name, job_timeout=int(settings.job_timeout.total_seconds()))


def bind(app: Flask, settings: Settings) -> None:
    """Attach settings, database and queue to the app, with one connection per request.

    peewee connects (takes one from the pool) on a request's first query; the
    connection goes back when the request ends.
    """
    _, queue = start(settings, pooled=True)
    if _gevent_patched():
        cooperate_with_gevent()
    app.extensions["preview.settings"] = settings
    app.extensions["preview.queue"] = queue
    app.extensions["preview.gitea"] = gitea_client(settings)
    if settings.access == "gitea":
        app.extensions["preview.access"] = preview_access(settings)
    if settings.gitea_url and settings.oauth_client_id and settings.oauth_client_secret and settings.session_secret:
        app.extensions["preview.dashboard"] = dashboard(settings)
    # Built on first use: only the routes that read the cluster need a Kubernetes client.
    app.extensions["preview.services"] = functools.cache(lambda: services(settings, queue))

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        if not database.is_closed():
            database.close()


def _gevent_patched() -> bool:
    """Running in a gunicorn gevent worker (sockets patched), not in a test or a plain process."""
    import sys

    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


class ClusterNotConfigured(Exception):
    """Neither KUBECONFIG nor an in-cluster service account is available."""


def _oauth(settings: Settings, callback_path: str) -> Any:
    from app.adapters.gitea_oauth import GiteaOAuth

    assert settings.gitea_url and settings.oauth_client_id and settings.oauth_client_secret
    return GiteaOAuth(
        settings.gitea_url,
        settings.oauth_client_id,
        settings.oauth_client_secret,
        f"{settings.public_url}{callback_path}",
    )


def _session_store(settings: Settings) -> Any:
    import redis

    return redis.Redis.from_url(settings.redis_url, socket_timeout=2)


def dashboard(settings: Settings) -> Any:
    """The dashboard's sign-in (the same OAuth2 application as preview sign-in) and sessions."""
    from app.usecases.dashboard import Dashboard

    return Dashboard(settings, _session_store(settings), _oauth(settings, "/signin/callback"))


def preview_access(settings: Settings) -> Any:
    """Sign-in with Gitea (PREVIEW_ACCESS=gitea): its OAuth2 client and a Redis for sessions."""
    from app.usecases.preview_access import PreviewAccess

    return PreviewAccess(settings, _session_store(settings), _oauth(settings, "/auth/callback"))


def gitea_client(settings: Settings) -> Gitea | None:
    return Gitea(settings.gitea_url, settings.gitea_token) if settings.gitea_url else None


def services(settings: Settings, queue: JobQueue | None) -> Services:
    """The adapters the use cases run with; Gitea only when GITEA_URL is set."""
    gitea = gitea_client(settings)
    try:
        configuration = load_configuration(settings.kubeconfig)
    except Exception as error:  # the kubernetes client raises its own ConfigException or OSError
        raise ClusterNotConfigured(f"no Kubernetes cluster: set KUBECONFIG or run in a cluster ({error})") from error
    return Services(settings=settings, kube=Kube(configuration), gitea=gitea, queue=queue)
