"""What people and agents ask of previews, in one vocabulary: find, request, delete, approve,
pin, extend, and read credentials or logs. The API, the MCP tools, the dashboard and the CLI
each only translate their input and these errors (app/usecases/errors.py); every command asks
its `Actor` for the right first, so no transport can forget to.

Scopes: `read` sees previews, `deploy` also requests, deletes, pins, extends, approves and
reads logs, `admin` also reads credentials (app/usecases/access/tokens.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from app.db import utcnow
from app.domain.git_refs import branch_name_problem
from app.domain.states import PreviewState
from app.models import Event, Preview, WebhookDelivery
from app.usecases.access.tokens import Grant
from app.usecases.errors import Invalid, NotFound
from app.usecases.operations import previews
from app.usecases.operations.views import delivery_summary
from app.usecases.ports import Services


class Actor(Protocol):
    """Who asks: an API token's grant, a signed-in dashboard user, the operator."""

    def sees(self, repository: str) -> bool:
        """Whether `repository`'s previews exist for them at all."""
        ...

    def require(self, scope: str, repository: str | None = None) -> None:
        """Forbidden unless they have `scope` (on `repository`, when named)."""
        ...


def find(actor: Actor, preview_id: int, scope: str = "read") -> Preview:
    """The preview, if the actor may act on it with `scope`; one they may not see does not exist."""
    actor.require(scope)
    preview: Preview | None = Preview.get_or_none(Preview.id == preview_id)
    if preview is None or not actor.sees(preview.repository.full_name):
        raise NotFound(f"preview {preview_id} not found")
    actor.require(scope, preview.repository.full_name)
    return preview


def find_task(actor: Actor, services: Services, task_id: str, repository: str | None, scope: str) -> Preview:
    """The live preview of the task's branch (in `repository`, or the only one known)."""
    actor.require(scope)
    preview = previews.preview_for_task(services.settings, task_id, repository)
    if not actor.sees(preview.repository.full_name):
        raise NotFound(f"task {task_id!r} has no preview")
    actor.require(scope, preview.repository.full_name)
    return preview


def delivery(actor: Actor, key: str) -> dict[str, Any]:
    """A webhook delivery, by our id or Gitea's (X-Gitea-Delivery), as received and as planned;
    one about a repository the actor may not see does not exist."""
    actor.require("read")
    found: WebhookDelivery | None = None
    if key.isdigit() and len(key) <= 12:
        found = WebhookDelivery.get_or_none(WebhookDelivery.id == int(key))
    if found is None:
        found = WebhookDelivery.get_or_none(WebhookDelivery.delivery_uuid == key[:64])
    if found is None or not found.repository_full_name or not actor.sees(found.repository_full_name):
        raise NotFound(f"delivery {key!r} not found")
    return delivery_summary(found)


def listing(grant: Grant, state: str | None, repository: str | None, page: int, per_page: int) -> previews.Page:
    """A page of previews the token sees, newest first; another repository's list is empty."""
    grant.require("read")
    if repository is not None and not grant.sees(repository):
        return previews.Page(items=[], total=0, page=page, per_page=per_page)
    return previews.list_previews(state, repository or grant.repository, page, per_page)


def request(
    services: Services, actor: Actor, repository: str, branch: str | None = None, pr_number: int | None = None
) -> tuple[Preview, bool]:
    """Start or update the preview of a branch or a PR at the head Gitea reports now. Returns
    the preview and whether its deploy is queued (False: Redis is down, the scheduler resumes it).
    Invalid before anything else: a wrong request is wrong whoever sends it."""
    if repository.count("/") != 1:
        raise Invalid("repository must be owner/name")
    if (branch is None) == (pr_number is None):
        raise Invalid("give exactly one of branch or pr_number")
    if branch is not None and (problem := branch_name_problem(branch)):
        raise Invalid(f"branch {branch!r} is not a valid git branch name: it {problem}")
    if pr_number is not None and pr_number < 1:
        raise Invalid("pr_number must be a positive whole number")
    actor.require("deploy", repository)
    return previews.request_preview(services, repository, branch, pr_number)


def request_task(services: Services, actor: Actor, task_id: str, repository: str | None) -> tuple[Preview, bool]:
    """The same for a task: its branch is the first task-branch pattern with the task id in it,
    in `repository` (or the only repository the service knows)."""
    if repository is not None and repository.count("/") != 1:
        raise Invalid("repository must be owner/name")
    full_name = previews.task_repository(repository)
    actor.require("deploy", full_name)
    branch = previews.task_branch(services.settings, task_id)
    if problem := branch_name_problem(branch):
        raise Invalid(
            f"task id {task_id!r} makes the branch {branch!r}, which is not a valid git branch name: it {problem}"
        )
    return request(services, actor, full_name, branch)


def redeploy(services: Services, actor: Actor, preview: Preview) -> tuple[Preview, bool]:
    branch = None if preview.pr_number is not None else preview.branch
    return request(services, actor, preview.repository.full_name, branch, preview.pr_number)


def delete(services: Services, actor: Actor, preview: Preview, now: datetime | None = None) -> Preview:
    """Tear it down (deleting at first; deleted once everything is gone)."""
    actor.require("deploy", preview.repository.full_name)
    return previews.delete_preview(services.queue, preview, now or utcnow())


def pin(actor: Actor, preview: Preview, pinned: bool, now: datetime) -> None:
    """Pin (never expires) or unpin. A PR's label preview:keep, read again at its next event, wins."""
    actor.require("deploy", preview.repository.full_name)
    Preview.update(pinned=pinned, updated_at=now).where(Preview.id == preview.id).execute()
    Event.record(preview, "pin", "pinned from the dashboard" if pinned else "unpinned from the dashboard")


def extend(services: Services, actor: Actor, preview: Preview, by: timedelta, now: datetime) -> datetime | None:
    """Push the expiry back by `by`, never past PREVIEW_MAX_TTL from now; returns the new expiry.

    Compare-and-set on the expiry the caller read, and only while the preview is live: None
    when a deploy, a teardown or another click changed it meanwhile (nothing is overwritten)."""
    actor.require("deploy", preview.repository.full_name)
    start = max(preview.expires_at or now, now)
    expires_at = min(start + by, now + services.settings.max_preview_ttl)
    read = Preview.expires_at.is_null() if preview.expires_at is None else Preview.expires_at == preview.expires_at
    changed = (
        Preview.update(expires_at=expires_at, updated_at=now)
        .where((Preview.id == preview.id) & read & Preview.state.in_(PreviewState.ACTIVE))
        .execute()
    )
    return expires_at if changed else None


def approve(services: Services, actor: Actor, preview: Preview, approver: str, sha: str, now: datetime) -> bool:
    """Build commit `sha` of an untrusted PR, the one the approver's page showed; False when the
    PR moved on since (nothing is approved then)."""
    actor.require("deploy", preview.repository.full_name)
    return previews.approve(services.gitea, services.queue, preview, approver, sha, now)


def credentials(services: Services, actor: Actor, preview: Preview) -> dict[str, Any]:
    """The URL, user and password of a live preview (and its database's URL)."""
    actor.require("admin", preview.repository.full_name)
    deployed = previews.require_deployed(preview)  # before the cluster: a deleted preview is 404 even without one
    return previews.credentials(services.settings, services.kube, deployed)


def logs(services: Services, actor: Actor, preview: Preview, tail: int) -> dict[str, str]:
    """The last `tail` lines of the app's log and of its latest build."""
    actor.require("deploy", preview.repository.full_name)
    return previews.logs(services.settings, services.kube, preview, tail)
