"""Sessions at rest in Redis are sealed: a Gitea OAuth token is a user's own key to Gitea, and
whoever reads Redis (a backup, a shared instance, a debugging session) must not get it.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under a key derived from
PREVIEW_SESSION_SECRET: authenticated, so a record someone wrote into Redis is refused too.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


class Sealer:
    def __init__(self, secret: str, purpose: str) -> None:
        digest = hashlib.sha256(f"preview-session-store:{purpose}:{secret}".encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, record: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(record).encode())

    def open(self, sealed: bytes | str | None) -> dict[str, Any] | None:
        """The record, or None when there is none or it was not sealed with this key."""
        if sealed is None:
            return None
        try:
            found = json.loads(self._fernet.decrypt(sealed.encode() if isinstance(sealed, str) else sealed))
        except (InvalidToken, ValueError):
            return None
        return found if isinstance(found, dict) else None
