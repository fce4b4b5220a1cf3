"""Gitea's webhook signature: lowercase hex HMAC-SHA256 of the raw body."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, signature: str | None) -> bool:
    """Compare in constant time; an empty or missing signature never matches."""
    if not signature:
        return False
    # Bytes, so that a header with non-ASCII characters is simply a mismatch.
    given = signature.strip().lower().encode("utf-8", errors="replace")
    return hmac.compare_digest(sign(secret, body).encode(), given)
