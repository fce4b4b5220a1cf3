"""The MCP server agents use: typed tools over the preview use cases (app/mcp/tools.py).

Two transports: stdio (`python -m app.mcp`, or the `gitea-previews-mcp` script; the
token comes from PREVIEW_MCP_TOKEN) and streamable HTTP (`python -m app.mcp --http`,
its own Procfile process; every request needs `Authorization: Bearer <API token>`,
refused at the HTTP layer otherwise). Tokens and scopes are the JSON API's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import AnyHttpUrl

from app.db import database
from app.mcp.tools import PreviewTools
from app.settings import Settings
from app.usecases.access import tokens

INSTRUCTIONS = (
    "Preview environments of Gitea pull requests and task branches. trigger_preview_deploy starts or "
    "updates one and returns its id; poll get_preview until state is ready (url set) or failed "
    "(failure_reason says why); get_preview_logs shows the app's and the build's output; "
    "delete_preview removes everything it used."
)


def grant_of(token: str | None, settings: Settings) -> tokens.Grant | None:
    if not token:
        return None
    with database.connection_context():
        return tokens.grant_for(token, settings.api_tokens)


class ApiTokenVerifier:
    """Bearer tokens are the API's (`pvt_...` or API_TOKENS); a token the API refuses is refused here."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def verify_token(self, token: str) -> AccessToken | None:
        grant = await anyio.to_thread.run_sync(grant_of, token, self.settings)
        if grant is None:
            return None
        client = f"api-token-{grant.token_id}" if grant.token_id is not None else "api-token"
        return AccessToken(token=token, client_id=client, scopes=[grant.scope])


def build_server(tools: PreviewTools, caller_token: Callable[[], str | None], http_url: str | None = None) -> MCPServer:
    """The server with its tools. `caller_token()` says whose call it is (the HTTP request's
    bearer token, or the stdio process's token)."""
    settings = tools.settings
    auth: dict[str, Any] = {}
    if http_url is not None:
        auth = {
            "token_verifier": ApiTokenVerifier(settings),
            # Our bearer tokens are the service's own API tokens, not OAuth tokens issued for a
            # resource: there is no audience to check (and saying so silences the SDK's warning).
            "auth": AuthSettings(
                issuer_url=AnyHttpUrl(settings.public_url),
                resource_server_url=AnyHttpUrl(http_url),
                validate_token_resource=False,
            ),
        }
    server: MCPServer = MCPServer("gitea-previews", instructions=INSTRUCTIONS, **auth)

    def grant() -> tokens.Grant | None:
        return grant_of(caller_token(), settings)

    @server.tool()
    def trigger_preview_deploy(
        task_id: str | None = None,
        repository: str | None = None,
        branch: str | None = None,
        pr_number: int | None = None,
    ) -> dict[str, Any]:
        """Start or update the preview of a task, a branch or a pull request, at the head commit Gitea
        reports now. Give task_id (the branch task/<task_id>; add repository when the service knows
        several), or repository ("owner/name") with branch, or repository with pr_number. Returns the
        preview (id, state, progress, url) and whether its deploy was queued. Needs a deploy token."""
        return tools.trigger(grant(), task_id, repository, branch, pr_number)

    @server.tool()
    def get_preview(preview_id: int) -> dict[str, Any]:
        """One preview: state (queued, pending_approval, building, deploying, ready, failed, deleting,
        deleted), progress from 0 to 100, url (reachable once ready), failure_reason when failed."""
        return tools.get(grant(), preview_id)

    @server.tool()
    def list_previews(state: str | None = None, repository: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Previews, newest first, optionally of one state and one repository ("owner/name"); at most
        `limit` (1 to 200)."""
        return tools.list(grant(), state, repository, limit)

    @server.tool()
    def get_preview_logs(preview_id: int, tail: int = 100) -> dict[str, Any]:
        """The last `tail` lines (1 to 5000) of the preview's app log and of its latest build."""
        if not 1 <= tail <= 5000:
            raise ToolError("tail must be from 1 to 5000")
        return tools.logs(grant(), preview_id, tail)

    @server.tool()
    def delete_preview(preview_id: int) -> dict[str, Any]:
        """Tear the preview down (namespace, database, everything it used). Returns its state, deleting
        at first; get_preview says deleted once it is gone. Needs a deploy token."""
        return tools.delete(grant(), preview_id)

    @server.tool()
    def get_preview_credentials(preview_id: int) -> dict[str, Any]:
        """The url, username and password of a live preview (and database_url when it has a database).
        Needs an admin token."""
        return tools.credentials(grant(), preview_id)

    return server


def http_caller_token() -> str | None:
    access = get_access_token()
    return access.token if access else None
