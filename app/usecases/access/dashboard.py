"""The dashboard's users and what they see: sign-in with Gitea (the same OAuth2 application
as preview sign-in), sessions kept server-side in Redis, and each user's view limited to the
repositories their own Gitea token can read; actions need write access there."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.domain import redirects
from app.domain.sealing import Sealer
from app.models import Repository
from app.settings import Settings
from app.usecases.access.gitea_signin import GiteaSignin
from app.usecases.errors import Forbidden
from app.usecases.ports import SessionStore, SignInProvider

SESSION_COOKIE = "dashboard_session"
NONCE_COOKIE = "dashboard_signin"
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class User:
    sid: str
    login: str
    token: str
    csrf: str  # the form token of this session


class Dashboard:
    def __init__(self, settings: Settings, store: SessionStore, oauth: SignInProvider) -> None:
        assert settings.session_secret
        self.settings, self.store, self.oauth = settings, store, oauth
        self.signer = URLSafeTimedSerializer(settings.session_secret, salt="dashboard")
        self.signin = GiteaSignin(oauth, self.signer, "dashboard")
        self.sealer = Sealer(settings.session_secret, "dashboard")

    # --- sign-in ------------------------------------------------------------------------

    def start(self, next_path: str) -> tuple[str, str]:
        # Only a path of ours, as a browser reads it ("//host", "/\\host", "/\t/host" are other sites).
        return self.signin.start(redirects.local_path(next_path) or "/")

    def finish(self, code: str, state: str, nonce: str | None) -> tuple[str, str]:
        """The new session's cookie value and where to go. ValueError for a state this browser did not start."""
        signed_in = self.signin.finish(code, state, nonce)
        sid = secrets.token_urlsafe(24)
        record = {"login": signed_in.login, "token": signed_in.token, "csrf": secrets.token_urlsafe(24)}
        self.store.set(
            f"dashboard:session:{sid}", self.sealer.seal(record), ex=min(signed_in.lifetime, SESSION_SECONDS)
        )
        return self.signer.dumps(sid), redirects.local_path(signed_in.back_to) or "/"

    def user(self, cookie: str | None) -> User | None:
        if not cookie:
            return None
        try:
            sid = self.signer.loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:
            return None
        found = self.sealer.open(self.store.get(f"dashboard:session:{sid}"))
        if found is None:
            return None
        return User(str(sid), found["login"], found["token"], found["csrf"])

    def sign_out(self, user: User) -> None:
        self.store.delete(f"dashboard:session:{user.sid}")

    # --- permissions (the user's own token, cached briefly) ------------------------------

    def _permissions(self, user: User, repository: str) -> dict[str, bool]:
        key = f"dashboard:perm:{user.sid}:{repository.lower()}"
        cached = self.store.get(key)
        if cached is not None:
            return dict(json.loads(cached))
        found = self.oauth.permissions(user.token, repository)
        self.store.set(key, json.dumps(found), ex=int(self.settings.access_cache_ttl.total_seconds()))
        return found

    def readable(self, user: User) -> list[str]:
        names = [r.full_name for r in Repository.select(Repository.full_name).order_by(Repository.full_name)]
        return [name for name in names if self.can_read(user, name)]

    def can_write(self, user: User, repository: str) -> bool:
        allowed = self._permissions(user, repository)
        return allowed["push"] or allowed["admin"]

    def can_read(self, user: User, repository: str) -> bool:
        return self._permissions(user, repository)["pull"]


@dataclass(frozen=True)
class SignedIn:
    """A signed-in user as the commands' Actor: they see the previews of what their own Gitea
    token can read; anything more (logs, credentials, actions) needs write access there."""

    board: Dashboard
    user: User

    def sees(self, repository: str) -> bool:
        return self.board.can_read(self.user, repository)

    def require(self, scope: str, repository: str | None = None) -> None:
        if repository is None:
            return  # every signed-in user has a dashboard; the repository decides
        if scope == "read":
            if not self.sees(repository):
                raise Forbidden(f"{self.user.login} cannot read {repository}")
        elif not self.board.can_write(self.user, repository):
            raise Forbidden(f"{self.user.login} cannot write to {repository}: only writers see secrets or act.")
