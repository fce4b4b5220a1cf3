"""The JSON API under /api/: bearer tokens from API_TOKENS. Thin handlers over app.previews."""

from __future__ import annotations

import hmac
import json
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from app.db import utcnow
from app.domain.git_refs import branch_name_problem
from app.models import PreviewState
from app.runtime import ClusterNotConfigured
from app.usecases import previews

blueprint = Blueprint("api", __name__, url_prefix="/api")


def _error(status: int, message: str) -> ResponseReturnValue:
    return jsonify(error=message), status


def _authorized() -> bool:
    tokens = current_app.extensions["preview.settings"].api_tokens
    header = request.headers.get("Authorization", "")
    if not tokens or not header.startswith("Bearer "):
        return False
    given = header[len("Bearer ") :].strip().encode()
    # Compare with every token, in constant time, so timing says nothing about which matched.
    return any([hmac.compare_digest(given, token.encode()) for token in tokens])


@blueprint.before_request
def _require_token() -> ResponseReturnValue | None:
    if not _authorized():
        return _error(401, "a valid bearer token (API_TOKENS) is required")
    return None


@blueprint.errorhandler(previews.NotFound)
def _not_found(error: previews.NotFound) -> ResponseReturnValue:
    return _error(404, str(error))


@blueprint.errorhandler(previews.Unavailable)
def _unavailable(error: previews.Unavailable) -> ResponseReturnValue:
    return _error(503, str(error))


def _queue() -> Any:
    return current_app.extensions["preview.queue"]


def _gitea() -> Any:
    return current_app.extensions["preview.gitea"]


def _services() -> Any:
    try:
        return current_app.extensions["preview.services"]()
    except ClusterNotConfigured as error:
        raise previews.Unavailable(str(error)) from error


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
    preview, queued = previews.request_preview(_gitea(), _queue(), repository, branch, pr)
    return _accepted(preview, queued)


@blueprint.post("/tasks/<task_id>/preview")
def create_task_preview(task_id: str) -> ResponseReturnValue:
    settings = current_app.extensions["preview.settings"]
    body = _json_body(optional=True)
    named = body.get("repository") or request.args.get("repository")
    if named is not None and (not isinstance(named, str) or named.count("/") != 1):
        raise BadInput("repository must be owner/name")
    repository = previews.task_repository(named)
    branch = previews.task_branch(settings, task_id)
    if problem := branch_name_problem(branch):
        raise BadInput(
            f"task id {task_id!r} makes the branch {branch!r}, which is not a valid git branch name: it {problem}"
        )
    preview, queued = previews.request_preview(_gitea(), _queue(), repository, branch)
    return _accepted(preview, queued)


@blueprint.get("/previews")
def list_previews() -> ResponseReturnValue:
    state = request.args.get("state")
    if state and state not in PreviewState.ALL:
        raise BadInput(f"state must be one of {', '.join(PreviewState.ALL)}")
    page = previews.list_previews(
        state, request.args.get("repository"), _int_arg("page", 1, 1, 100000), _int_arg("per_page", 50, 1, 200)
    )
    return jsonify(
        items=[previews.serialize(p) for p in page.items], total=page.total, page=page.page, per_page=page.per_page
    )


@blueprint.get("/previews/stats")
def stats() -> ResponseReturnValue:
    return jsonify(previews.stats(current_app.extensions["preview.settings"], utcnow()))


@blueprint.get("/previews/<int:preview_id>")
def show_preview(preview_id: int) -> ResponseReturnValue:
    return jsonify(previews.serialize(previews.get_preview(preview_id), full=True))


@blueprint.delete("/previews/<int:preview_id>")
def delete_preview(preview_id: int) -> ResponseReturnValue:
    preview = previews.delete_preview(_queue(), previews.get_preview(preview_id))
    return jsonify(id=preview.id, state=preview.state), 202


@blueprint.delete("/tasks/<task_id>/preview")
def delete_task_preview(task_id: str) -> ResponseReturnValue:
    settings = current_app.extensions["preview.settings"]
    preview = previews.preview_for_task(settings, task_id, request.args.get("repository"))
    preview = previews.delete_preview(_queue(), preview)
    return jsonify(id=preview.id, state=preview.state), 202


@blueprint.get("/previews/<int:preview_id>/credentials")
def preview_credentials(preview_id: int) -> ResponseReturnValue:
    preview = previews.require_deployed(previews.get_preview(preview_id))
    services = _services()
    return jsonify(previews.credentials(services.settings, services.kube, preview))


@blueprint.get("/previews/<int:preview_id>/logs")
def preview_logs(preview_id: int) -> ResponseReturnValue:
    tail = _int_arg("tail", 100, 1, 5000)
    preview = previews.get_preview(preview_id)
    services = _services()
    return jsonify(id=preview.id, tail=tail, **previews.logs(services.settings, services.kube, preview, tail))


@blueprint.get("/tasks/<task_id>/preview-logs")
def task_preview_logs(task_id: str) -> ResponseReturnValue:
    settings = current_app.extensions["preview.settings"]
    tail = _int_arg("tail", 100, 1, 5000)
    preview = previews.preview_for_task(settings, task_id, request.args.get("repository"))
    services = _services()
    return jsonify(id=preview.id, tail=tail, **previews.logs(services.settings, services.kube, preview, tail))
