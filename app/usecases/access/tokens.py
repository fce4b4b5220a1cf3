"""Scoped API tokens: who may read, deploy, or read credentials, and for which repository.

`read` lists and shows previews; `deploy` also triggers and deletes them and
reads their logs; `admin` also reads credentials. A token may be limited to one
repository: other repositories' previews do not exist for it (404). Tokens in
API_TOKENS are admin tokens for every repository, as before.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from app.db import utcnow
from app.models import ApiToken, Repository
from app.usecases.errors import Forbidden

SCOPES = ("read", "deploy", "admin")
TOKEN_PREFIX = "pvt_"


@dataclass(frozen=True)
class Grant:
    """What the bearer may do."""

    scope: str
    repository: str | None  # owner/name, or None for every repository
    token_id: int | None = None

    def allows(self, needed: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(needed)

    def covers(self, repository: str) -> bool:
        return self.repository is None or self.repository.lower() == repository.lower()

    def sees(self, repository: str) -> bool:
        """Whether previews of `repository` exist for this token (another's do not: 404, not 403)."""
        return self.covers(repository)

    def require(self, scope: str, repository: str | None = None) -> None:
        """Forbidden unless the token has `scope` (and is for `repository`, when one is named)."""
        if not self.allows(scope):
            raise Forbidden(f"this token's scope is {self.scope}; this needs {scope}")
        if repository is not None and not self.covers(repository):
            raise Forbidden(f"this token is for {self.repository}, not {repository}")


# The operator at the command line (`flask previews ...`): every right on every repository.
OPERATOR = Grant("admin", None)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(name: str, scope: str, repository: str | None) -> tuple[ApiToken, str]:
    """A new token; the plain token is returned here and never again."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    row = None
    if repository is not None:
        row = Repository.named(repository)
        if row is None:
            raise ValueError(f"no repository {repository!r} is known here (register it first)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return ApiToken.create(name=name, token_hash=_digest(token), scope=scope, repository=row), token


def revoke(token_id: int) -> bool:
    return bool(
        ApiToken.update(revoked_at=utcnow()).where((ApiToken.id == token_id) & ApiToken.revoked_at.is_null()).execute()
    )


def grant_for(bearer: str, shared_admin_tokens: tuple[str, ...]) -> Grant | None:
    """The bearer token's grant, or None when it is no valid token."""
    if not bearer:
        return None
    # API_TOKENS: compared with every one in constant time, so timing says nothing about which matched.
    if any([hmac.compare_digest(bearer.encode(), token.encode()) for token in shared_admin_tokens]):
        return Grant("admin", None)
    if not bearer.startswith(TOKEN_PREFIX):
        return None
    row = ApiToken.get_or_none((ApiToken.token_hash == _digest(bearer)) & ApiToken.revoked_at.is_null())
    if row is None:
        return None
    ApiToken.update(last_used_at=utcnow()).where(ApiToken.id == row.id).execute()
    return Grant(row.scope, row.repository.full_name if row.repository_id else None, row.id)
