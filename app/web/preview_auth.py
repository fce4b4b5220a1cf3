"""Sign-in with Gitea for previews (PREVIEW_ACCESS=gitea): the forward-auth endpoints the
proxies ask, and the OAuth2 sign-in and callback. Logic in app/usecases/access/preview_access.py."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, abort, redirect, request
from flask.typing import ResponseReturnValue

from app.usecases.access.gitea_signin import SIGNIN_SECONDS
from app.usecases.access.preview_access import COOKIE, NONCE_COOKIE, Decision, PreviewAccess, original_request
from app.usecases.ports import GiteaError
from app.web import context

log = logging.getLogger(__name__)
blueprint = Blueprint("preview_auth", __name__)


def _settings() -> Any:
    return context.settings()


def _access() -> PreviewAccess:
    access = context.web().preview_access
    if access is None:
        abort(404)  # PREVIEW_ACCESS is not gitea
    return access


def _answer(decision: Decision, secure: bool) -> Response:
    response = Response(decision.reason + "\n", status=decision.status, mimetype="text/plain")
    for name, value in decision.headers.items():
        response.headers[name] = value
    if decision.cookie:
        # No Domain: the preview's host alone. No other preview ever sees it.
        response.set_cookie(COOKIE, decision.cookie, httponly=True, secure=secure, samesite="Lax", path="/")
    response.headers["Cache-Control"] = "no-store"
    return response


def _check(slug: str, rest: str, redirect_mode: bool) -> ResponseReturnValue:
    access = _access()
    original = original_request(request.headers, rest)
    if original is None:
        return Response("the proxy did not say which request this is\n", status=400, mimetype="text/plain")
    try:
        decision = access.check(slug, original, request.cookies.get(COOKIE), redirect_mode)
    except GiteaError as error:
        log.warning("preview access check failed: %s", error)
        return Response("Gitea cannot be asked right now\n", status=503, mimetype="text/plain")
    return _answer(decision, original.secure)


# Each preview's route is given an auth address with its slug: which preview a request is
# for is never read from a header the client can set (Host, X-Original-URL, X-Forwarded-Host).


@blueprint.get("/auth/preview/<slug>")
def forward_auth(slug: str) -> ResponseReturnValue:
    """ingress-nginx (auth-url) and nginx auth_request: 200, 401 (then auth-signin) or 403."""
    return _check(slug, "", redirect_mode=False)


@blueprint.get("/auth/forward/<slug>", defaults={"rest": ""})
@blueprint.get("/auth/forward/<slug>/<path:rest>")
def forward_auth_redirecting(slug: str, rest: str) -> ResponseReturnValue:
    """Traefik (ForwardAuth) and proxies that append the request's path: they hand a non-2xx
    answer to the browser, so the sign-in is a redirect."""
    return _check(slug, rest, redirect_mode=True)


@blueprint.get("/auth/preview")
@blueprint.get("/auth/forward")
def forward_auth_unnamed() -> ResponseReturnValue:
    """The addresses of earlier releases, which named no preview: they open nothing (a deploy
    gives the preview's route its own address)."""
    return Response("this auth address names no preview; redeploy it\n", status=403, mimetype="text/plain")


@blueprint.get("/auth/signin")
def signin() -> ResponseReturnValue:
    access = _access()
    back_to = access.preview_url(request.args.get("rd", ""))
    if back_to is None:
        return Response("rd must be the address of a preview\n", status=400, mimetype="text/plain")
    authorize, nonce = access.start(back_to)
    response = redirect(authorize, code=302)
    response.set_cookie(
        NONCE_COOKIE,
        nonce,
        max_age=SIGNIN_SECONDS,
        httponly=True,
        secure=_settings().public_url.startswith("https://"),
        samesite="Lax",
        path="/auth/",
    )
    return response


@blueprint.get("/auth/callback")
def callback() -> ResponseReturnValue:
    access = _access()
    code, state = request.args.get("code"), request.args.get("state")
    if not code or not state:
        return Response("Gitea did not sign you in (no code)\n", status=400, mimetype="text/plain")
    try:
        back_to = access.finish(code, state, request.cookies.get(NONCE_COOKIE))
    except ValueError as error:
        return Response(f"{error}\n", status=400, mimetype="text/plain")
    except GiteaError as error:
        log.warning("preview sign-in failed: %s", error)
        return Response("Gitea could not confirm the sign-in; try again\n", status=502, mimetype="text/plain")
    response = redirect(back_to, code=302)
    response.delete_cookie(NONCE_COOKIE, path="/auth/")
    return response
