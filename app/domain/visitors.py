"""Who is at a sleeping preview's door: a request that may wake it, or one that must not
(a HEAD, a prefetch, a link-preview bot unfurling a URL pasted in a chat or a PR)."""

from __future__ import annotations

import base64
import binascii
import hmac
import re

# Link unfurlers and crawlers, by the names in their user agents.
_BOTS = re.compile(
    r"bot\b|crawler|spider|slurp|facebookexternalhit|embedly|preview|unfurl|whatsapp|skypeuripreview"
    r"|bitlybot|vkshare|quora link|outbrain|pinterest",
    re.IGNORECASE,
)


def is_bot(user_agent: str | None) -> bool:
    """A link-preview bot or crawler, or no user agent at all (scripts that say nothing)."""
    return not user_agent or bool(_BOTS.search(user_agent))


def may_wake(method: str, user_agent: str | None, purpose: str | None) -> bool:
    """A person's browser asking for the page: a GET or POST, not a prefetch, not a bot."""
    if method not in ("GET", "POST"):
        return False
    if purpose and "prefetch" in purpose.lower():
        return False  # Sec-Purpose / Purpose: a browser guessing, not a person asking
    return not is_bot(user_agent)


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """The user and password of an `Authorization: Basic ...` header; None for anything else."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if colon else None


def credentials_match(given: tuple[str, str] | None, username: str, password: str) -> bool:
    if given is None or not password:
        return False
    same_user = hmac.compare_digest(given[0].encode(), username.encode())
    return hmac.compare_digest(given[1].encode(), password.encode()) and same_user
