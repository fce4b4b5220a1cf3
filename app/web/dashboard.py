"""The dashboard at `/`: server-rendered pages for people, signed in with Gitea.

Every page needs a session; every POST needs the session's CSRF token; an action needs
write access to the preview's repository (asked of Gitea with the user's own token).
No secret travels in a URL: credentials come from a POST.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response as BaseResponse

from app.adapters.gitea import GiteaError
from app.db import utcnow
from app.domain import redirects
from app.domain.states import PreviewState
from app.usecases import dashboard, previews
from app.usecases.dashboard import NONCE_COOKIE, SESSION_COOKIE, Dashboard, User
from app.usecases.gitea_signin import SIGNIN_SECONDS
from app.usecases.ports import ClusterNotConfigured
from app.web import context

blueprint = Blueprint("dashboard", __name__)
EXTEND_BY = timedelta(hours=24)
ACTIONS = ("redeploy", "delete", "pin", "unpin", "extend", "approve")


def _dashboard() -> Dashboard | None:
    return context.web().dashboard


def _signed_in() -> tuple[Dashboard, User] | BaseResponse:
    board = _dashboard()
    if board is None:
        return Response(render_template("dashboard_off.html"), status=200)
    user = board.user(request.cookies.get(SESSION_COOKIE))
    if user is None:
        return redirect(url_for("dashboard.signin", next=request.full_path.rstrip("?")))
    return board, user


def _csrf_ok(user: User) -> bool:
    sent = request.form.get("csrf") or request.headers.get("X-CSRF-Token") or ""
    return bool(sent) and sent == user.csrf


def _writers_only(user: User, preview: Any) -> str:
    """Logs, credentials and actions are for those who can write to the repository, as in the API."""
    return f"{user.login} cannot write to {preview.repository.full_name}: only writers see secrets or act."


def _settings() -> Any:
    return context.settings()


def _secure() -> bool:
    """Cookies are Secure when the service is served over https, whatever the hop before us says."""
    return bool(_settings().public_url.startswith("https://"))


@blueprint.errorhandler(GiteaError)
def _gitea_down(error: GiteaError) -> ResponseReturnValue:
    return Response(render_template("dashboard_error.html", message="Gitea cannot be asked right now."), status=503)


@blueprint.errorhandler(ClusterNotConfigured)
def _no_cluster(error: ClusterNotConfigured) -> ResponseReturnValue:
    return jsonify(error=str(error)), 503


@blueprint.errorhandler(previews.NotFound)
def _not_found(error: previews.NotFound) -> ResponseReturnValue:
    return Response(render_template("dashboard_error.html", message=str(error)), status=404)


@blueprint.get("/")
def index() -> ResponseReturnValue:
    found = _signed_in()
    if isinstance(found, BaseResponse):
        return found
    board, user = found
    readable = board.readable(user)
    filters = {key: request.args.get(key) or None for key in ("repository", "state", "q")}
    mine = user.login if request.args.get("mine") else None
    cards = dashboard.list_cards(
        _settings(), readable, utcnow(), filters["repository"], filters["state"], filters["q"], mine
    )
    writable = {name for name in readable if board.can_write(user, name)}
    return render_template(
        "dashboard_list.html",
        user=user,
        cards=cards,
        readable=readable,
        writable=writable,
        states=[s for s in PreviewState.ALL if s != PreviewState.DELETED],
        filters=filters,
        mine=bool(mine),
    )


@blueprint.get("/dashboard/cards.json")
def cards_json() -> ResponseReturnValue:
    """The live part of the cards (state, progress), for the page's polling."""
    found = _signed_in()
    if isinstance(found, BaseResponse):
        return jsonify(error="sign in"), 401
    board, user = found
    wanted = [int(i) for i in request.args.get("ids", "").split(",") if i.isdigit()][:200]
    now, settings = utcnow(), _settings()
    shown = []
    for preview_id in wanted:
        try:
            preview = board.visible(user, preview_id)
        except previews.NotFound:
            continue
        if preview.state == PreviewState.DELETED:
            continue  # gone: the page drops its card
        shown.append(dashboard.card(settings, preview, now, settings.gitea_url))
    return jsonify(items=shown)


@blueprint.get("/p/<int:preview_id>")
def preview_page(preview_id: int) -> ResponseReturnValue:
    found = _signed_in()
    if isinstance(found, BaseResponse):
        return found
    board, user = found
    preview = board.visible(user, preview_id)
    settings = _settings()
    return render_template(
        "dashboard_preview.html",
        user=user,
        card=dashboard.card(settings, preview, utcnow(), settings.gitea_url),
        preview=preview,
        can_write=board.can_write(user, preview.repository.full_name),
        writable={preview.repository.full_name} if board.can_write(user, preview.repository.full_name) else set(),
        **dashboard.history(preview),
    )


@blueprint.get("/p/<int:preview_id>/logs.json")
def preview_logs(preview_id: int) -> ResponseReturnValue:
    found = _signed_in()
    if isinstance(found, BaseResponse):
        return jsonify(error="sign in"), 401
    board, user = found
    preview = board.visible(user, preview_id)
    if not board.can_write(user, preview.repository.full_name):
        return jsonify(error=_writers_only(user, preview)), 403
    services = context.services()
    return jsonify(previews.logs(services.settings, services.kube, preview, 100))


@blueprint.post("/p/<int:preview_id>/credentials")
def preview_credentials(preview_id: int) -> ResponseReturnValue:
    found = _signed_in()
    if isinstance(found, BaseResponse):
        return jsonify(error="sign in"), 401
    board, user = found
    if not _csrf_ok(user):
        return jsonify(error="the form token is missing or wrong; reload the page"), 400
    preview = board.visible(user, preview_id)
    if not board.can_write(user, preview.repository.full_name):
        return jsonify(error=_writers_only(user, preview)), 403
    preview = previews.require_deployed(preview)
    services = context.services()
    return jsonify(previews.credentials(services.settings, services.kube, preview))


@blueprint.post("/p/<int:preview_id>/<action>")
def act(preview_id: int, action: str) -> ResponseReturnValue:
    found = _signed_in()
    if isinstance(found, BaseResponse):
        return found
    board, user = found
    if action not in ACTIONS:
        abort(404)
    if not _csrf_ok(user):
        return Response(render_template("dashboard_error.html", message="The form token is wrong."), status=400)
    preview = board.visible(user, preview_id)
    repository = preview.repository.full_name
    if not board.can_write(user, repository):
        return Response(render_template("dashboard_error.html", message=_writers_only(user, preview)), status=403)
    now, queue = utcnow(), context.services().queue
    if action == "delete":
        previews.delete_preview(queue, preview, now)
    elif action == "redeploy":
        previews.request_preview(context.services(), repository, preview_branch(preview), preview.pr_number)
    elif action in ("pin", "unpin"):
        previews.set_pinned(preview, action == "pin", now)
    elif action == "extend":
        if dashboard.extend(_settings(), preview, EXTEND_BY, now) is None:
            message = "Not extended: the preview changed meanwhile (a deploy or a teardown). Look again."
            return Response(render_template("dashboard_error.html", message=message), status=409)
    elif action == "approve":
        sha = request.form.get("sha", "")
        if not previews.approve(context.services().gitea, queue, preview, user.login, sha, now):
            message = "Nothing approved: the pull request has moved on since this page was shown. Look again."
            return Response(render_template("dashboard_error.html", message=message), status=409)
    back = redirects.local_path(request.form.get("back") or "")
    return redirect(back or url_for("dashboard.preview_page", preview_id=preview_id), code=303)


def preview_branch(preview: Any) -> str | None:
    return None if preview.pr_number is not None else preview.branch


@blueprint.get("/stats")
def stats_page() -> ResponseReturnValue:
    found = _signed_in()
    if isinstance(found, BaseResponse):
        return found
    board, user = found
    figures = dashboard.stats_for(_settings(), board.readable(user), utcnow())
    return render_template(
        "dashboard_stats.html",
        user=user,
        figures=figures,
        by_age=dashboard.bars(figures["by_age"]),
        by_repository=dashboard.bars(figures["by_repository"]),
    )


@blueprint.get("/signin")
def signin() -> ResponseReturnValue:
    board = _dashboard()
    if board is None:
        return Response(render_template("dashboard_off.html"), status=200)
    authorize, nonce = board.start(request.args.get("next", "/"))
    response = redirect(authorize, code=302)
    response.set_cookie(NONCE_COOKIE, nonce, max_age=SIGNIN_SECONDS, httponly=True, secure=_secure(), samesite="Lax")
    return response


@blueprint.get("/signin/callback")
def signin_callback() -> ResponseReturnValue:
    board = _dashboard()
    if board is None:
        abort(404)
    code, state = request.args.get("code"), request.args.get("state")
    if not code or not state:
        return Response(render_template("dashboard_error.html", message="Gitea did not sign you in."), status=400)
    try:
        cookie, next_path = board.finish(code, state, request.cookies.get(NONCE_COOKIE))
    except ValueError as error:
        return Response(render_template("dashboard_error.html", message=str(error)), status=400)
    response = redirect(next_path, code=302)
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, secure=_secure(), samesite="Lax")
    response.delete_cookie(NONCE_COOKIE)
    return response


@blueprint.post("/signout")
def signout() -> ResponseReturnValue:
    found = _signed_in()
    if isinstance(found, BaseResponse):
        return found
    board, user = found
    if _csrf_ok(user):
        board.sign_out(user)
    response = redirect(url_for("dashboard.index"), code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
