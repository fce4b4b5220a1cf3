"""What the MCP tools do, for one caller's grant: the same use cases and the same scope
checks as the JSON API (app/web/api.py), with errors an agent can read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from app.db import database
from app.domain.states import PreviewState
from app.settings import Settings
from app.usecases.access import tokens
from app.usecases.errors import Forbidden, Invalid, NotFound, Unavailable
from app.usecases.operations import commands
from app.usecases.operations.views import view, views
from app.usecases.ports import ClusterNotConfigured, Services


@dataclass
class PreviewTools:
    services: Services

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def _call(self, grant: tokens.Grant | None, work: Callable[[tokens.Grant], Any]) -> Any:
        """Run `work` for the caller; the commands' errors become ToolErrors an agent can read."""
        if grant is None:
            raise ToolError("not authorized: a valid API token is required")
        try:
            with database.connection_context():
                return work(grant)
        except (Invalid, NotFound, Forbidden) as error:
            raise ToolError(str(error)) from None
        except (Unavailable, ClusterNotConfigured) as error:
            raise ToolError(f"unavailable: {error}") from None

    def trigger(
        self,
        grant: tokens.Grant | None,
        task_id: str | None,
        repository: str | None,
        branch: str | None,
        pr_number: int | None,
    ) -> dict[str, Any]:
        def work(grant: tokens.Grant) -> dict[str, Any]:
            if task_id is not None:
                if branch is not None or pr_number is not None:
                    raise ToolError("give a task_id, or a repository with a branch or a pr_number, not both")
                preview, queued = commands.request_task(self.services, grant, task_id, repository)
            else:
                preview, queued = commands.request(self.services, grant, repository or "", branch, pr_number)
            return {**view(preview).to_dict(), "queued": queued}

        return self._call(grant, work)

    def get(self, grant: tokens.Grant | None, preview_id: int) -> dict[str, Any]:
        return self._call(grant, lambda g: view(commands.find(g, preview_id)).to_dict())

    def list(
        self, grant: tokens.Grant | None, state: str | None, repository: str | None, limit: int
    ) -> list[dict[str, Any]]:
        def work(grant: tokens.Grant) -> list[dict[str, Any]]:
            if state is not None and state not in PreviewState.ALL:
                raise ToolError(f"state must be one of {', '.join(PreviewState.ALL)}")
            page = commands.listing(grant, state, repository, 1, max(1, min(limit, 200)))
            return [shown.to_dict() for shown in views(page.items)]

        return self._call(grant, work)

    def logs(self, grant: tokens.Grant | None, preview_id: int, tail: int) -> dict[str, Any]:
        def work(grant: tokens.Grant) -> dict[str, Any]:
            preview = commands.find(grant, preview_id, "deploy")
            return {"id": preview.id, **commands.logs(self.services, grant, preview, tail)}

        return self._call(grant, work)

    def delete(self, grant: tokens.Grant | None, preview_id: int) -> dict[str, Any]:
        def work(grant: tokens.Grant) -> dict[str, Any]:
            preview = commands.delete(self.services, grant, commands.find(grant, preview_id, "deploy"))
            return {"id": preview.id, "state": preview.state}

        return self._call(grant, work)

    def credentials(self, grant: tokens.Grant | None, preview_id: int) -> dict[str, Any]:
        def work(grant: tokens.Grant) -> dict[str, Any]:
            return commands.credentials(self.services, grant, commands.find(grant, preview_id, "admin"))

        return self._call(grant, work)
