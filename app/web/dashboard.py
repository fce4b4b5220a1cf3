"""The dashboard at `/`: server-rendered pages for people, signed in with Gitea.

Every page needs a session; every POST needs the session's CSRF token; an action needs
write access to the preview's repository (asked of Gitea with the user's own token).
No secret travels in a URL: credentials come from a POST.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, abort, g, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from app.db import utcnow
from app.domain import redirects
from app.domain.states import PreviewState
from app.usecases.access.dashboard import NONCE_COOKIE, SESSION_COOKIE, Dashboard, SignedIn, User
from app.usecases.access.gitea_signin import SIGNIN_SECONDS
from app.usecases.errors import Forbidden, NotFound
from app.usecases.operations import board as board_pages
from app.usecases.operations import commands
from app.usecases.operations.views import view
from app.usecases.ports import ClusterNotConfigured, GiteaError
from app.web import context

blueprint = Blueprint("dashboard", __name__)
EXTEND_BY = timedelta(hours=24)
ACTIONS = ("redeploy", "delete", "pin", "unpin", "extend", "approve")


def _dashboard() -> Dashboard | None:
    return context.web().dashboard


def _failed(status: int, message: str) -> ResponseReturnValue:
    """An error as the request wants it: JSON for the pages' scripts, else a page."""
    if g.get("dashboard_json"):
        return jsonify(error=message), status
    return Response(render_template("dashboard_error.html", message=message), status=status)


def signed_in(*, answers_json: bool = False) -> Callable[[Callable[..., ResponseReturnValue]], Callable[..., Any]]:
    """The view runs for a signed-in user only, who comes as its first argument (a `SignedIn`,
    the commands' Actor). A visitor is sent to sign in (a script gets 401); a POST must carry
    the session's form token."""

    def decorate(view: Callable[..., ResponseReturnValue]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(**kwargs: Any) -> ResponseReturnValue:
            g.dashboard_json = answers_json
            board = _dashboard()
            user = board.user(request.cookies.get(SESSION_COOKIE)) if board is not None else None
            if board is None or user is None:
                if answers_json:
                    return jsonify(error="sign in"), 401
                if board is None:
                    return Response(render_template("dashboard_off.html"), status=200)
                return redirect(url_for("dashboard.signin", next=request.full_path.rstrip("?")))
            if request.method == "POST" and not _csrf_ok(user):
                return _failed(400, "The form token is missing or wrong; reload the page.")
            return view(SignedIn(board, user), **kwargs)

        return wrapped

    return decorate


def _csrf_ok(user: User) -> bool:
    sent = request.form.get("csrf") or request.headers.get("X-CSRF-Token") or ""
    return bool(sent) and sent == user.csrf


def _secure() -> bool:
    """Cookies are Secure when the service is served over https, whatever the hop before us says."""
    return bool(context.settings().public_url.startswith("https://"))


@blueprint.errorhandler(GiteaError)
def _gitea_down(error: GiteaError) -> ResponseReturnValue:
    return _failed(503, "Gitea cannot be asked right now.")


@blueprint.errorhandler(ClusterNotConfigured)
def _no_cluster(error: ClusterNotConfigured) -> ResponseReturnValue:
    return _failed(503, str(error))


@blueprint.errorhandler(NotFound)
def _not_found(error: NotFound) -> ResponseReturnValue:
    return _failed(404, str(error))


@blueprint.errorhandler(Forbidden)
def _forbidden(error: Forbidden) -> ResponseReturnValue:
    return _failed(403, str(error))


@blueprint.get("/")
@signed_in()
def index(me: SignedIn) -> ResponseReturnValue:
    board, user = me.board, me.user
    readable = board.readable(user)
    filters = {key: request.args.get(key) or None for key in ("repository", "state", "q")}
    mine = user.login if request.args.get("mine") else None
    cards = board_pages.list_cards(
        context.settings(), readable, utcnow(), filters["repository"], filters["state"], filters["q"], mine
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
@signed_in(answers_json=True)
def cards_json(me: SignedIn) -> ResponseReturnValue:
    """The live part of the cards (state, progress), for the page's polling."""
    wanted = [int(i) for i in request.args.get("ids", "").split(",") if i.isdigit()][:200]
    shown = []
    for preview_id in wanted:
        try:
            preview = commands.find(me, preview_id)
        except (NotFound, Forbidden):
            continue
        if preview.state != PreviewState.DELETED:  # gone: the page drops its card
            shown.append(preview)
    return jsonify(items=board_pages.cards(context.settings(), shown, utcnow()))


@blueprint.get("/p/<int:preview_id>")
@signed_in()
def preview_page(me: SignedIn, preview_id: int) -> ResponseReturnValue:
    preview = commands.find(me, preview_id)
    can_write = me.board.can_write(me.user, preview.repository.full_name)
    return render_template(
        "dashboard_preview.html",
        user=me.user,
        card=board_pages.card(context.settings(), view(preview), utcnow()),
        preview=preview,
        can_write=can_write,
        writable={preview.repository.full_name} if can_write else set(),
        **board_pages.history(preview),
    )


@blueprint.get("/p/<int:preview_id>/logs.json")
@signed_in(answers_json=True)
def preview_logs(me: SignedIn, preview_id: int) -> ResponseReturnValue:
    return jsonify(commands.logs(context.services(), me, commands.find(me, preview_id), 100))


@blueprint.post("/p/<int:preview_id>/credentials")
@signed_in(answers_json=True)
def preview_credentials(me: SignedIn, preview_id: int) -> ResponseReturnValue:
    return jsonify(commands.credentials(context.services(), me, commands.find(me, preview_id)))


@blueprint.post("/p/<int:preview_id>/<action>")
@signed_in()
def act(me: SignedIn, preview_id: int, action: str) -> ResponseReturnValue:
    if action not in ACTIONS:
        abort(404)
    preview, services, now = commands.find(me, preview_id), context.services(), utcnow()
    if action == "delete":
        commands.delete(services, me, preview, now)
    elif action == "redeploy":
        commands.redeploy(services, me, preview)
    elif action in ("pin", "unpin"):
        commands.pin(me, preview, action == "pin", now)
    elif action == "extend" and commands.extend(services, me, preview, EXTEND_BY, now) is None:
        return _failed(409, "Not extended: the preview changed meanwhile (a deploy or a teardown). Look again.")
    elif action == "approve" and not commands.approve(
        services, me, preview, me.user.login, request.form.get("sha", ""), now
    ):
        return _failed(409, "Nothing approved: the pull request has moved on since this page was shown. Look again.")
    back = redirects.local_path(request.form.get("back") or "")
    return redirect(back or url_for("dashboard.preview_page", preview_id=preview_id), code=303)


@blueprint.get("/stats")
@signed_in()
def stats_page(me: SignedIn) -> ResponseReturnValue:
    figures = board_pages.stats_for(context.settings(), me.board.readable(me.user), utcnow())
    return render_template(
        "dashboard_stats.html",
        user=me.user,
        figures=figures,
        by_age=board_pages.bars(figures["by_age"]),
        by_repository=board_pages.bars(figures["by_repository"]),
        spend=board_pages.spend_chart(figures["spend"], figures["first_day"]),
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
@signed_in()
def signout(me: SignedIn) -> ResponseReturnValue:
    me.board.sign_out(me.user)
    response = redirect(url_for("dashboard.index"), code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
