"""The JSON API under /api/, for scoped bearer tokens (app/usecases/access/tokens.py).

Thin handlers: they read the request, call a command (app/usecases/operations/commands.py)
and answer with the read model (app/usecases/operations/views.py)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from app.db import utcnow
from app.domain.states import PreviewState
from app.usecases.access import tokens
from app.usecases.errors import Forbidden, Invalid, NotFound, Unavailable
from app.usecases.intake import repositories
from app.usecases.operations import commands, previews
from app.usecases.operations.views import details, view, views
from app.usecases.ports import ClusterNotConfigured, GiteaError
from app.web import context

blueprint = Blueprint("api", __name__, url_prefix="/api")


def _error(status: int, message: str) -> ResponseReturnValue:
    return jsonify(error=message), status


@blueprint.before_request
def _require_token() -> ResponseReturnValue | None:
    header = request.headers.get("Authorization", "")
    bearer = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""
    grant = tokens.grant_for(bearer, context.settings().api_tokens)
    if grant is None:
        return _error(401, "a valid bearer token is required (flask tokens create, or API_TOKENS)")
    g.grant = grant
    return None


def _grant() -> tokens.Grant:
    grant: tokens.Grant = g.grant
    return grant


@blueprint.errorhandler(Forbidden)
def _forbidden(error: Forbidden) -> ResponseReturnValue:
    return _error(403, str(error))


@blueprint.errorhandler(NotFound)
def _not_found(error: NotFound) -> ResponseReturnValue:
    return _error(404, str(error))


@blueprint.errorhandler(Unavailable)
def _unavailable(error: Unavailable) -> ResponseReturnValue:
    return _error(503, str(error))


@blueprint.errorhandler(ClusterNotConfigured)
def _no_cluster(error: ClusterNotConfigured) -> ResponseReturnValue:
    return _error(503, str(error))


def _json_body(optional: bool = False) -> dict[str, Any]:
    """The request's JSON object; Invalid for anything else (an array, bad JSON, absurd nesting)."""
    raw = request.get_data(cache=True)
    if optional and not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise Invalid("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    return body


@blueprint.errorhandler(Invalid)
def _invalid(error: Invalid) -> ResponseReturnValue:
    return _error(400, str(error))


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise Invalid(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _accepted(preview: Any, queued: bool) -> ResponseReturnValue:
    return jsonify(id=preview.id, state=preview.state, url=preview.url, head_sha=preview.head_sha, queued=queued), 202


@blueprint.post("/previews")
def create_preview() -> ResponseReturnValue:
    body = _json_body()
    repository, branch, pr = body.get("repository"), body.get("branch"), body.get("pr_number")
    if not isinstance(repository, str):
        raise Invalid("repository must be owner/name")
    if branch is not None and pr is None and (not isinstance(branch, str) or not branch.strip()):
        raise Invalid("branch must be a non-empty string")
    if pr is not None and branch is None and (not isinstance(pr, int) or isinstance(pr, bool)):
        raise Invalid("pr_number must be a positive whole number")
    preview, queued = commands.request(context.services(), _grant(), repository, branch, pr)
    return _accepted(preview, queued)


@blueprint.post("/tasks/<task_id>/preview")
def create_task_preview(task_id: str) -> ResponseReturnValue:
    named = _json_body(optional=True).get("repository") or request.args.get("repository")
    if named is not None and not isinstance(named, str):
        raise Invalid("repository must be owner/name")
    preview, queued = commands.request_task(context.services(), _grant(), task_id, named)
    return _accepted(preview, queued)


@blueprint.get("/previews")
def list_previews() -> ResponseReturnValue:
    state = request.args.get("state")
    if state and state not in PreviewState.ALL:
        raise Invalid(f"state must be one of {', '.join(PreviewState.ALL)}")
    number, per_page = _int_arg("page", 1, 1, 100000), _int_arg("per_page", 50, 1, 200)
    page = commands.listing(_grant(), state, request.args.get("repository"), number, per_page)
    items = [shown.to_dict() for shown in views(page.items)]
    return jsonify(items=items, total=page.total, page=page.page, per_page=page.per_page)


@blueprint.get("/previews/stats")
def stats() -> ResponseReturnValue:
    _grant().require("read")
    if _grant().repository is not None:
        raise Forbidden("the stats cover every repository; this token is for one")
    return jsonify(previews.stats(context.settings(), utcnow()))


@blueprint.get("/previews/<int:preview_id>")
def show_preview(preview_id: int) -> ResponseReturnValue:
    preview = commands.find(_grant(), preview_id)
    cost = previews.cost_summary(context.settings(), preview, utcnow())
    return jsonify(view(preview).to_dict() | details(preview) | {"cost": cost})


@blueprint.get("/deliveries/<key>")
def show_delivery(key: str) -> ResponseReturnValue:
    """A webhook delivery by our id (intake's answer) or Gitea's: what the worker made of it."""
    return jsonify(commands.delivery(_grant(), key))


@blueprint.delete("/previews/<int:preview_id>")
def delete_preview(preview_id: int) -> ResponseReturnValue:
    grant = _grant()
    preview = commands.delete(context.services(), grant, commands.find(grant, preview_id, "deploy"))
    return jsonify(id=preview.id, state=preview.state), 202


@blueprint.delete("/tasks/<task_id>/preview")
def delete_task_preview(task_id: str) -> ResponseReturnValue:
    services, grant = context.services(), _grant()
    preview = commands.find_task(grant, services, task_id, request.args.get("repository"), "deploy")
    preview = commands.delete(services, grant, preview)
    return jsonify(id=preview.id, state=preview.state), 202


@blueprint.get("/previews/<int:preview_id>/credentials")
def preview_credentials(preview_id: int) -> ResponseReturnValue:
    grant = _grant()
    return jsonify(commands.credentials(context.services(), grant, commands.find(grant, preview_id, "admin")))


@blueprint.get("/previews/<int:preview_id>/logs")
def preview_logs(preview_id: int) -> ResponseReturnValue:
    tail, grant = _int_arg("tail", 100, 1, 5000), _grant()
    preview = commands.find(grant, preview_id, "deploy")
    return jsonify(id=preview.id, tail=tail, **commands.logs(context.services(), grant, preview, tail))


@blueprint.get("/tasks/<task_id>/preview-logs")
def task_preview_logs(task_id: str) -> ResponseReturnValue:
    tail, services, grant = _int_arg("tail", 100, 1, 5000), context.services(), _grant()
    preview = commands.find_task(grant, services, task_id, request.args.get("repository"), "deploy")
    return jsonify(id=preview.id, tail=tail, **commands.logs(services, grant, preview, tail))


@blueprint.post("/repositories")
def register_repository() -> ResponseReturnValue:
    """Register a repository (admin, every repository): its own secret and its Gitea webhook."""
    _grant().require("admin")
    if _grant().repository is not None:
        raise Forbidden("registering repositories needs an admin token for every repository")
    name = _json_body().get("repository")
    if not isinstance(name, str) or name.count("/") != 1:
        raise Invalid("repository must be owner/name")
    try:
        done = repositories.register(context.services().gitea, context.settings(), name)
    except repositories.RegistrationError as error:
        raise NotFound(str(error)) from error
    except GiteaError as error:
        raise Unavailable(f"Gitea: {error}") from error
    return jsonify(repository=done.full_name, hook_id=done.hook_id, created=done.created), 201


@blueprint.get("/repositories")
def list_repositories() -> ResponseReturnValue:
    _grant().require("admin")
    if _grant().repository is not None:
        raise Forbidden("listing repositories needs an admin token for every repository")
    return jsonify(items=[{"repository": r.full_name, "hook_id": r.hook_id} for r in repositories.registered()])
