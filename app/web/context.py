"""What the web's handlers reach through the app: one `WebContext` (the services and the two
sign-ins, made by `for_services`), attached by the factory and read through typed accessors."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from app import bootstrap
from app.db import cooperate_with_gevent, database
from app.settings import Settings
from app.usecases.access.dashboard import Dashboard
from app.usecases.access.preview_access import PreviewAccess
from app.usecases.intake.signers import Signers
from app.usecases.ports import Services

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

KEY = "previews"


@dataclass
class WebContext:
    services: Services
    dashboard: Dashboard | None  # the dashboard's sign-in; None without OAuth settings
    preview_access: PreviewAccess | None  # preview sign-in (PREVIEW_ACCESS=gitea)
    signers: Signers  # the webhook secrets, kept in memory by each web process
    metrics: CollectorRegistry | None = None  # /metrics' collectors, made on the first scrape


def for_services(services: Services) -> WebContext:
    """The services, and the two sign-ins when their settings are there (both use Gitea's OAuth2
    application and keep their sessions in the services' session store)."""
    if _gevent_patched():
        cooperate_with_gevent()
    settings, access, board = services.settings, None, None
    if settings.access == "gitea":
        oauth = bootstrap.sign_in(settings, "/auth/callback")
        assert oauth is not None, "Settings refuse PREVIEW_ACCESS=gitea without OAuth settings"
        access = PreviewAccess(settings, services.sessions, oauth)
    oauth = bootstrap.sign_in(settings, "/signin/callback")
    if oauth is not None and settings.session_secret:
        board = Dashboard(settings, services.sessions, oauth)
    signers = Signers(settings.gitea_webhook_secret)
    return WebContext(services=services, dashboard=board, preview_access=access, signers=signers)


def _gevent_patched() -> bool:
    """Running in a gunicorn gevent worker (sockets patched), not in a test or a plain process."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


def install(app: Flask, context: WebContext) -> None:
    """Attach the context, with one database connection per request: peewee connects (takes
    one from the pool) on a request's first query; it goes back when the request ends."""
    app.extensions[KEY] = context

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        if not database.is_closed():
            database.close()


def web() -> WebContext:
    context: WebContext = current_app.extensions[KEY]
    return context


def services() -> Services:
    return web().services


def signers() -> Signers:
    return web().signers


def settings() -> Settings:
    return web().services.settings
