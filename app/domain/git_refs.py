"""Git's rules for branch names (git check-ref-format), checked before a name reaches a URL path.

A name that breaks them is not a branch git could have pushed; in a Gitea API path
it could be something worse (`../..` walks to other routes with the bot's token).
"""

from __future__ import annotations

import re

_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def branch_name_problem(name: str) -> str | None:
    """Why `name` is not a valid branch name, or None when it is."""
    if not name or name == "@":
        return "is empty" if not name else "is '@'"
    if len(name.encode()) > 255:
        return "is longer than 255 bytes"
    if _FORBIDDEN.search(name):
        return "contains a space, a control character or one of ~ ^ : ? * [ \\"
    if ".." in name or "@{" in name or "//" in name:
        return "contains '..', '@{' or '//'"
    if name.startswith(("/", "-")) or name.endswith(("/", ".")):
        return "starts with '/' or '-', or ends with '/' or '.'"
    if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        return "has a part that starts with '.' or ends with '.lock'"
    return None
