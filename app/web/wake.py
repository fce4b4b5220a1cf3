"""The wake page: what a sleeping preview's host answers while its app is scaled to zero.
Requests for a preview's host never reach the service's other pages. Logic in
app/usecases/access/wake_visits.py."""

from __future__ import annotations

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue

from app.usecases.access import wake_visits
from app.web import context


def _for_preview_hosts() -> ResponseReturnValue | None:
    slug = wake_visits.preview_slug(context.settings(), request.host)
    if slug is None:
        return None  # the service's own host: its pages as usual
    page = wake_visits.visit(
        context.services(),
        slug,
        request.method,
        request.headers.get("Authorization"),
        request.headers.get("User-Agent"),
        request.headers.get("Sec-Purpose") or request.headers.get("Purpose"),
    )
    body = "" if request.method == "HEAD" else render_template("wake.html", page=page)
    headers = {"Cache-Control": "no-store"}
    if page.reload_seconds:
        headers["Retry-After"] = str(page.reload_seconds)
    return body, page.status, headers


def install(app: Flask) -> None:
    app.before_request(_for_preview_hosts)
