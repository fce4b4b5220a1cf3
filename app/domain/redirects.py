"""Where a sign-in may send the browser afterwards, decided as a browser reads a URL.

Python's `urlsplit` and a browser disagree: a browser drops tabs and newlines, reads `\\`
as `/` and `//host` as another site. So a target is refused when it has anything a browser
would read differently (control characters, spaces, backslashes, userinfo), and what is
accepted is rebuilt from its parsed parts and must equal what was given.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

# Control characters, space, backslash and DEL: browsers strip or reinterpret them.
_AMBIGUOUS = re.compile(r"[\x00-\x20\x7f\\]")
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def local_path(target: str) -> str | None:
    """`target` when it is a path of this site (`/x?y`), else None."""
    if not target or _AMBIGUOUS.search(target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return None
    rebuilt = urlunsplit(("", "", parts.path, parts.query, ""))
    return rebuilt if rebuilt == target.split("#", 1)[0] else None


def preview_url(
    target: str, preview_domain: str, port: int | None = None, schemes: tuple[str, ...] = ("https",)
) -> str | None:
    """`target` when it is an address on one preview's host (`<slug>.<preview_domain>`), in one
    of `schemes` and on no port but `port` (the previews' port when not the scheme's default),
    else None. https only by default: the address carries a sign-in ticket."""
    if not target or _AMBIGUOUS.search(target):
        return None
    parts = urlsplit(target)
    if parts.scheme not in schemes or "@" in parts.netloc:
        return None
    try:
        given_port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    suffix = "." + preview_domain.lower()
    if given_port != port or not host.endswith(suffix) or not _DNS_LABEL.fullmatch(host[: -len(suffix)]):
        return None
    netloc = host if port is None else f"{host}:{port}"
    rebuilt = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    given = target.split("#", 1)[0]
    return rebuilt if rebuilt in (given, given + "/") else None
