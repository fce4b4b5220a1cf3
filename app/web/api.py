"""The JSON API under /api/: scoped bearer tokens (app/usecases/tokens.py). Thin handlers over app.previews."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from app.adapters.gitea import GiteaError
from app.db import utcnow
from app.domain.git_refs import branch_name_problem
from app.domain.states import PreviewState
from app.usecases import previews, repositories, tokens
from app.usecases.ports import ClusterNotConfigured
from app.web import context

blueprint = Blueprint("api", __name__, url_prefix="/api")


def _error(status: int, message: str) -> ResponseReturnValue:
    return jsonify(error=message), status


class Forbidden(Exception):
    pass


@blueprint.before_request
def _require_token() -> ResponseReturnValue | None:
    header = request.headers.get("Authorization", "")
    bearer = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""
    grant = tokens.grant_for(bearer, context.settings().api_tokens)
    if grant is None:
        return _error(401, "a valid bearer token is required (flask tokens create, or API_TOKENS)")
    g.grant = grant
    return None


def _need(scope: str, repository: str | None = None) -> tokens.Grant:
    """The request's grant, if it has `scope` (and covers `repository`); Forbidden otherwise."""
    grant: tokens.Grant = g.grant
    if not grant.allows(scope):
        raise Forbidden(f"this token's scope is {grant.scope}; this needs {scope}")
    if repository is not None and not grant.covers(repository):
        raise Forbidden(f"this token is for {grant.repository}, not {repository}")
    return grant


def _visible(preview: Any, scope: str) -> Any:
    """The preview, if the token may act on it with `scope`; another repository's does not exist for it."""
    if not _need(scope).sees(preview):
        raise previews.NotFound(f"no preview {preview.id}")
    return preview


@blueprint.errorhandler(Forbidden)
def _forbidden(error: Forbidden) -> ResponseReturnValue:
    return _error(403, str(error))


@blueprint.errorhandler(previews.NotFound)
def _not_found(error: previews.NotFound) -> ResponseReturnValue:
    return _error(404, str(error))


@blueprint.errorhandler(previews.Unavailable)
def _unavailable(error: previews.Unavailable) -> ResponseReturnValue:
    return _error(503, str(error))


@blueprint.errorhandler(ClusterNotConfigured)
def _no_cluster(error: ClusterNotConfigured) -> ResponseReturnValue:
    return _error(503, str(error))


def _json_body(optional: bool = False) -> dict[str, Any]:
    """The request's JSON object; BadInput for anything else (an array, bad JSON, absurd nesting)."""
    raw = request.get_data(cache=True)
    if optional and not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadInput("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadInput("the body must be a JSON object")
    return body


class BadInput(Exception):
    pass


@blueprint.errorhandler(BadInput)
def _bad_input(error: BadInput) -> ResponseReturnValue:
    return _error(400, str(error))


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadInput(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


def _accepted(preview: Any, queued: bool) -> ResponseReturnValue:
    return jsonify(id=preview.id, state=preview.state, url=preview.url, head_sha=preview.head_sha, queued=queued), 202


@blueprint.post("/previews")
def create_preview() -> ResponseReturnValue:
    body = _json_body()
    repository, branch, pr = body.get("repository"), body.get("branch"), body.get("pr_number")
    if not isinstance(repository, str) or repository.count("/") != 1:
        raise BadInput("repository must be owner/name")
    if (branch is None) == (pr is None):
        raise BadInput("give exactly one of branch or pr_number")
    if branch is not None and (not isinstance(branch, str) or not branch.strip()):
        raise BadInput("branch must be a non-empty string")
    if branch is not None and (problem := branch_name_problem(branch)):
        raise BadInput(f"branch is not a valid git branch name: it {problem}")
    if pr is not None and (not isinstance(pr, int) or isinstance(pr, bool) or pr < 1):
        raise BadInput("pr_number must be a positive whole number")
    _need("deploy", repository)
    preview, queued = previews.request_preview(context.services(), repository, branch, pr)
    return _accepted(preview, queued)


@blueprint.post("/tasks/<task_id>/preview")
def create_task_preview(task_id: str) -> ResponseReturnValue:
    settings = context.settings()
    body = _json_body(optional=True)
    named = body.get("repository") or request.args.get("repository")
    if named is not None and (not isinstance(named, str) or named.count("/") != 1):
        raise BadInput("repository must be owner/name")
    repository = previews.task_repository(named)
    _need("deploy", repository)
    branch = previews.task_branch(settings, task_id)
    if problem := branch_name_problem(branch):
        raise BadInput(
            f"task id {task_id!r} makes the branch {branch!r}, which is not a valid git branch name: it {problem}"
        )
    preview, queued = previews.request_preview(context.services(), repository, branch)
    return _accepted(preview, queued)


@blueprint.get("/previews")
def list_previews() -> ResponseReturnValue:
    state = request.args.get("state")
    if state and state not in PreviewState.ALL:
        raise BadInput(f"state must be one of {', '.join(PreviewState.ALL)}")
    grant, asked = _need("read"), request.args.get("repository")
    number, per_page = _int_arg("page", 1, 1, 100000), _int_arg("per_page", 50, 1, 200)
    if asked is not None and not grant.covers(asked):  # another repository's previews do not exist for it
        return jsonify(items=[], total=0, page=number, per_page=per_page)
    page = previews.list_previews(state, asked or grant.repository, number, per_page)
    return jsonify(
        items=[previews.serialize(p) for p in page.items], total=page.total, page=page.page, per_page=page.per_page
    )


@blueprint.get("/previews/stats")
def stats() -> ResponseReturnValue:
    if _need("read").repository is not None:
        raise Forbidden("the stats cover every repository; this token is for one")
    return jsonify(previews.stats(context.settings(), utcnow()))


@blueprint.get("/previews/<int:preview_id>")
def show_preview(preview_id: int) -> ResponseReturnValue:
    return jsonify(previews.serialize(_visible(previews.get_preview(preview_id), "read"), full=True))


@blueprint.delete("/previews/<int:preview_id>")
def delete_preview(preview_id: int) -> ResponseReturnValue:
    preview = previews.delete_preview(context.services().queue, _visible(previews.get_preview(preview_id), "deploy"))
    return jsonify(id=preview.id, state=preview.state), 202


@blueprint.delete("/tasks/<task_id>/preview")
def delete_task_preview(task_id: str) -> ResponseReturnValue:
    settings = context.settings()
    preview = _visible(previews.preview_for_task(settings, task_id, request.args.get("repository")), "deploy")
    preview = previews.delete_preview(context.services().queue, preview)
    return jsonify(id=preview.id, state=preview.state), 202


@blueprint.get("/previews/<int:preview_id>/credentials")
def preview_credentials(preview_id: int) -> ResponseReturnValue:
    preview = previews.require_deployed(_visible(previews.get_preview(preview_id), "admin"))
    services = context.services()
    return jsonify(previews.credentials(services.settings, services.kube, preview))


@blueprint.get("/previews/<int:preview_id>/logs")
def preview_logs(preview_id: int) -> ResponseReturnValue:
    tail = _int_arg("tail", 100, 1, 5000)
    preview = _visible(previews.get_preview(preview_id), "deploy")
    services = context.services()
    return jsonify(id=preview.id, tail=tail, **previews.logs(services.settings, services.kube, preview, tail))


@blueprint.get("/tasks/<task_id>/preview-logs")
def task_preview_logs(task_id: str) -> ResponseReturnValue:
    settings = context.settings()
    tail = _int_arg("tail", 100, 1, 5000)
    preview = _visible(previews.preview_for_task(settings, task_id, request.args.get("repository")), "deploy")
    services = context.services()
    return jsonify(id=preview.id, tail=tail, **previews.logs(services.settings, services.kube, preview, tail))


@blueprint.post("/repositories")
def register_repository() -> ResponseReturnValue:
    """Register a repository (admin, every repository): its own secret and its Gitea webhook."""
    if _need("admin").repository is not None:
        raise Forbidden("registering repositories needs an admin token for every repository")
    name = _json_body().get("repository")
    if not isinstance(name, str) or name.count("/") != 1:
        raise BadInput("repository must be owner/name")
    try:
        done = repositories.register(context.services().gitea, context.settings(), name)
    except repositories.RegistrationError as error:
        raise previews.NotFound(str(error)) from error
    except GiteaError as error:
        raise previews.Unavailable(f"Gitea: {error}") from error
    return jsonify(repository=done.full_name, hook_id=done.hook_id, created=done.created), 201


@blueprint.get("/repositories")
def list_repositories() -> ResponseReturnValue:
    if _need("admin").repository is not None:
        raise Forbidden("listing repositories needs an admin token for every repository")
    return jsonify(items=[{"repository": r.full_name, "hook_id": r.hook_id} for r in repositories.registered()])
