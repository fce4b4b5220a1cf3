"""What the web's handlers reach through the app: typed accessors over one `WebContext`,
attached by the factory, instead of string-keyed look-ups scattered over the blueprints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from app.db import database
from app.settings import Settings
from app.usecases.ports import Services

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from app.usecases.access.dashboard import Dashboard
    from app.usecases.access.preview_access import PreviewAccess

KEY = "previews"


@dataclass
class WebContext:
    services: Services
    dashboard: Dashboard | None  # the dashboard's sign-in; None without OAuth settings
    preview_access: PreviewAccess | None  # preview sign-in (PREVIEW_ACCESS=gitea)
    metrics: CollectorRegistry | None = None  # /metrics' collectors, made on the first scrape


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


def settings() -> Settings:
    return web().services.settings
