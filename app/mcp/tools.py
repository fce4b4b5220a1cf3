"""What the MCP tools do, for one caller's grant: the same use cases and the same scope
checks as the JSON API (app/web/api.py), with errors an agent can read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from app.db import database
from app.domain.git_refs import branch_name_problem
from app.domain.states import PreviewState
from app.models import Deployment, Event, Preview
from app.settings import Settings
from app.usecases import previews, tokens
from app.usecases.ports import ClusterNotConfigured, Services


@dataclass
class PreviewTools:
    services: Services

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def _call(self, grant: tokens.Grant | None, work: Callable[[tokens.Grant], Any]) -> Any:
        if grant is None:
            raise ToolError("not authorized: a valid API token is required")
        try:
            with database.connection_context():
                return work(grant)
        except previews.NotFound as error:
            raise ToolError(str(error)) from None
        except previews.Unavailable as error:
            raise ToolError(f"unavailable: {error}") from None
        except ClusterNotConfigured as error:
            raise ToolError(f"unavailable: {error}") from None

    @staticmethod
    def _need(grant: tokens.Grant, scope: str, repository: str | None = None) -> None:
        if not grant.allows(scope):
            raise ToolError(f"this token's scope is {grant.scope}; this needs {scope}")
        if repository is not None and not grant.covers(repository):
            raise ToolError(f"this token is for {grant.repository}, not {repository}")

    def _visible(self, grant: tokens.Grant, preview_id: int, scope: str) -> Preview:
        self._need(grant, scope)
        preview = previews.get_preview(preview_id)
        if not grant.sees(preview):
            raise previews.NotFound(f"preview {preview_id} not found")
        return preview

    def trigger(
        self,
        grant: tokens.Grant | None,
        task_id: str | None,
        repository: str | None,
        branch: str | None,
        pr_number: int | None,
    ) -> dict[str, Any]:
        def work(grant: tokens.Grant) -> dict[str, Any]:
            wanted_branch: str | None
            if task_id is not None:
                if branch is not None or pr_number is not None:
                    raise ToolError("give a task_id, or a repository with a branch or a pr_number, not both")
                full_name = previews.task_repository(repository)
                wanted_branch, wanted_pr = previews.task_branch(self.settings, task_id), None
            else:
                if not repository or repository.count("/") != 1:
                    raise ToolError("repository must be owner/name (or give a task_id)")
                if (branch is None) == (pr_number is None):
                    raise ToolError("give exactly one of branch or pr_number with the repository")
                full_name, wanted_branch, wanted_pr = repository, branch, pr_number
            if wanted_branch is not None and (problem := branch_name_problem(wanted_branch)):
                raise ToolError(f"{wanted_branch!r} is not a valid git branch name: it {problem}")
            if wanted_pr is not None and wanted_pr < 1:
                raise ToolError("pr_number must be a positive whole number")
            self._need(grant, "deploy", full_name)
            preview, queued = previews.request_preview(self.services, full_name, wanted_branch, wanted_pr)
            return {**summary(preview), "queued": queued}

        return self._call(grant, work)

    def get(self, grant: tokens.Grant | None, preview_id: int) -> dict[str, Any]:
        return self._call(grant, lambda g: summary(self._visible(g, preview_id, "read")))

    def list(
        self, grant: tokens.Grant | None, state: str | None, repository: str | None, limit: int
    ) -> list[dict[str, Any]]:
        def work(grant: tokens.Grant) -> list[dict[str, Any]]:
            self._need(grant, "read")
            if state is not None and state not in PreviewState.ALL:
                raise ToolError(f"state must be one of {', '.join(PreviewState.ALL)}")
            if repository is not None and not grant.covers(repository):
                return []
            page = previews.list_previews(state, repository or grant.repository, 1, max(1, min(limit, 200)))
            return [summary(preview) for preview in page.items]

        return self._call(grant, work)

    def logs(self, grant: tokens.Grant | None, preview_id: int, tail: int) -> dict[str, Any]:
        def work(grant: tokens.Grant) -> dict[str, Any]:
            preview = self._visible(grant, preview_id, "deploy")
            services = self.services
            return {"id": preview.id, **previews.logs(services.settings, services.kube, preview, tail)}

        return self._call(grant, work)

    def delete(self, grant: tokens.Grant | None, preview_id: int) -> dict[str, Any]:
        def work(grant: tokens.Grant) -> dict[str, Any]:
            preview = previews.delete_preview(self.services.queue, self._visible(grant, preview_id, "deploy"))
            return {"id": preview.id, "state": preview.state}

        return self._call(grant, work)

    def credentials(self, grant: tokens.Grant | None, preview_id: int) -> dict[str, Any]:
        def work(grant: tokens.Grant) -> dict[str, Any]:
            preview = previews.require_deployed(self._visible(grant, preview_id, "admin"))
            services = self.services
            return dict(previews.credentials(services.settings, services.kube, preview))

        return self._call(grant, work)


def summary(preview: Preview) -> dict[str, Any]:
    """What an agent polls for: state, progress (the pipeline's steps, 0 to 100), URL, why it failed."""
    last_progress = (
        Event.select(Event.progress)
        .where((Event.preview == preview) & Event.progress.is_null(False))
        .order_by(Event.id.desc())
        .first()
    )
    failure = None
    if preview.state == PreviewState.FAILED:
        last = preview.deployments.order_by(Deployment.id.desc()).first()
        failure = last.failure_reason if last else None
    return {
        "id": preview.id,
        "repository": preview.repository.full_name,
        "branch": preview.branch,
        "pr_number": preview.pr_number,
        "state": preview.state,
        "progress": 100 if preview.state == PreviewState.READY else (last_progress.progress if last_progress else 0),
        "url": preview.url,
        "head_sha": preview.head_sha,
        "deployed_sha": preview.deployed_sha,
        "failure_reason": failure,
        "expires_at": preview.expires_at.isoformat() + "Z" if preview.expires_at else None,
    }
