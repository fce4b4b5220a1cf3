"""Preview environments for Gitea pull requests: the web application factory."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.settings import Settings

if TYPE_CHECKING:
    from app.usecases.ports import Services
    from app.web.context import WebContext


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app. Tests pass `settings`; processes read them from the environment."""
    from app import bootstrap, cli
    from app.web import (
        api,
        context,
        dashboard,
        health,
        metrics,
        outages,
        pages,
        preview_auth,
        security_headers,
        webhooks,
    )

    if settings is None:
        bootstrap.configure_logging()
        settings = Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_webhook_bytes
    context.install(app, _web_context(bootstrap.start(settings, pooled=True)))
    security_headers.install(app)
    outages.install(app)
    if settings.trusted_proxy_hops:
        # The ingress (or the chart's Service) in front: its X-Forwarded-For/-Proto, no client's.
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    app.register_blueprint(health.blueprint)
    app.register_blueprint(webhooks.blueprint)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(metrics.blueprint)
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(preview_auth.blueprint)
    app.register_blueprint(dashboard.blueprint)
    cli.register(app)
    if not settings.gitea_webhook_secret:
        logging.getLogger(__name__).warning("GITEA_WEBHOOK_SECRET is not set: webhooks will be refused")
    return app


def _web_context(services: Services) -> WebContext:
    """The services, and the two sign-ins when their settings are there (both use Gitea's OAuth2
    application and keep their sessions in the services' session store)."""
    from app import bootstrap
    from app.db import cooperate_with_gevent
    from app.web.context import WebContext

    if _gevent_patched():
        cooperate_with_gevent()
    settings, access, board = services.settings, None, None
    if settings.access == "gitea":
        from app.usecases.access.preview_access import PreviewAccess

        oauth = bootstrap.sign_in(settings, "/auth/callback")
        assert oauth is not None, "Settings refuse PREVIEW_ACCESS=gitea without OAuth settings"
        access = PreviewAccess(settings, services.sessions, oauth)
    oauth = bootstrap.sign_in(settings, "/signin/callback")
    if oauth is not None and settings.session_secret:
        from app.usecases.access.dashboard import Dashboard

        board = Dashboard(settings, services.sessions, oauth)
    return WebContext(services=services, dashboard=board, preview_access=access)


def _gevent_patched() -> bool:
    """Running in a gunicorn gevent worker (sockets patched), not in a test or a plain process."""
    import sys

    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")
