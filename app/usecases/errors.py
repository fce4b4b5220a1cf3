"""The errors a command or a read raises for its caller, whatever the transport: the API
answers 400, 404, 403 and 503, the MCP tools a ToolError, the dashboard a page, the CLI a message."""

from __future__ import annotations


class Invalid(Exception):
    """The request itself is wrong (a bad branch name, two targets at once); nothing was changed."""


class NotFound(Exception):
    """What the caller named does not exist (or is not theirs to see); the message says which."""


class Forbidden(Exception):
    """The caller may see it but not do this; the message says what is missing."""


class Unavailable(Exception):
    """A system we need to answer (Gitea, the cluster) cannot be reached or is not configured."""
