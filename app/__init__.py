"""Preview environments for Gitea pull requests: the web application factory."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.settings import Settings


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
        wake,
        webhooks,
    )

    if settings is None:
        bootstrap.configure_logging()
        settings = Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_webhook_bytes
    context.install(app, context.for_services(bootstrap.start(settings, pooled=True)))
    security_headers.install(app)
    outages.install(app)
    wake.install(app)  # a sleeping preview's host: its wake page, before any other route
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
