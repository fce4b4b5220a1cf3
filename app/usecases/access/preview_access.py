"""Sign-in with Gitea in front of previews (PREVIEW_ACCESS=gitea).

The proxy in front of a preview asks `check` about every request (forward auth).
Without a valid cookie the reviewer is sent to Gitea's OAuth2 sign-in; back here, the
service keeps their token server-side (Redis) and hands the preview a one-time
ticket in its URL; the proxy's next question carries it, and the answer sets a
cookie for that preview's host alone. So the cookie never reaches another preview
(whose code could be anyone's), and each request is let in only if the user's
own Gitea token can read the preview's repository (the answer cached briefly).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.domain import redirects
from app.domain.sealing import Sealer
from app.domain.states import PreviewState
from app.models import Preview
from app.settings import Settings
from app.usecases.access.gitea_signin import GiteaSignin
from app.usecases.ports import SessionStore, SignInProvider

COOKIE = "preview_auth"
NONCE_COOKIE = "preview_signin"
TICKET_PARAM = "__preview_ticket"
SESSION_SECONDS = 8 * 3600
TICKET_SECONDS = 120


@dataclass(frozen=True)
class Decision:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    cookie: str | None = None  # set for the preview's host


@dataclass(frozen=True)
class Original:
    """What the proxy says of the request it asks about: only its path (with the sign-in
    ticket, if any) and whether it came over https. Never which preview it was for: the
    client can set that (Host, X-Original-URL); the auth address names the preview."""

    path: str  # path and query
    secure: bool


def original_request(headers: Any, rest: str = "") -> Original | None:
    """The request's path, from what each proxy sends: X-Original-URL (nginx), X-Forwarded-Uri
    (Traefik), or the path appended to our address. `headers` is case-insensitive (werkzeug's Headers)."""
    url = headers.get("X-Original-URL")
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return None
        scheme, path = parts.scheme, urlunsplit(("", "", parts.path or "/", parts.query, ""))
    else:
        scheme = headers.get("X-Forwarded-Proto", "http")
        path = headers.get("X-Forwarded-Uri") or "/" + rest
    if scheme not in ("http", "https") or not path.startswith("/"):
        return None
    return Original(path, scheme == "https")


def without_ticket(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ticket = next((value for key, value in query if key == TICKET_PARAM), None)
    rest = urlencode([(key, value) for key, value in query if key != TICKET_PARAM])
    return urlunsplit(parts._replace(query=rest)), ticket


class PreviewAccess:
    def __init__(self, settings: Settings, store: SessionStore, oauth: SignInProvider) -> None:
        assert settings.session_secret
        self.settings, self.store, self.oauth = settings, store, oauth
        self.signer = URLSafeTimedSerializer(settings.session_secret, salt="preview-access")
        self.signin = GiteaSignin(oauth, self.signer, "preview")
        self.sealer = Sealer(settings.session_secret, "preview")

    # --- forward auth ---------------------------------------------------------------

    def check(self, slug: str, original: Original, cookie: str | None, redirect: bool) -> Decision:
        """200 (let in), 401 (sign in first; a redirect to it when `redirect`), 403 (no access).

        `slug` comes from the auth address the preview's own route was given, so it names the
        preview the request will reach whatever Host or X-Original-URL the client sent."""
        preview = self._preview(slug)
        if preview is None:
            return Decision(403, "no preview lives at this address")
        host = f"{slug}.{self.settings.preview_domain}"
        clean_path, ticket = without_ticket(original.path)
        clean_url = self._address(host, clean_path, original.secure)
        new_cookie = None
        session = self._session_from_cookie(cookie, host)
        if ticket is not None:
            sid = self._redeem(ticket, host)
            if sid is not None:
                session = self._session(sid)
                new_cookie = self.signer.dumps({"s": sid, "h": host})
        if session is None:
            if redirect:
                return Decision(302, "sign in first", {"Location": self.signin_url(clean_url)})
            return Decision(401, "sign in first")
        sid, login, token = session
        if not self._can_read(sid, token, preview.repository.full_name):
            return Decision(403, f"{login} cannot read {preview.repository.full_name}", cookie=new_cookie)
        if new_cookie and redirect:
            # Envoy and Traefik hand a non-2xx answer to the browser: land on the clean URL, cookie set.
            return Decision(302, "signed in", {"Location": clean_url}, cookie=new_cookie)
        return Decision(200, "allowed", {"X-Preview-User": login}, cookie=new_cookie)

    def _preview(self, slug: str) -> Preview | None:
        found: Preview | None = Preview.get_or_none((Preview.slug == slug) & Preview.state.in_(PreviewState.ACTIVE))
        return found

    def _address(self, host: str, path: str, secure: bool) -> str:
        port = self.settings.preview_port
        return f"{'https' if secure else 'http'}://{host}{'' if port is None else f':{port}'}{path}"

    def _session_from_cookie(self, cookie: str | None, host: str) -> tuple[str, str, str] | None:
        if not cookie:
            return None
        try:
            value = self.signer.loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:
            return None
        if not isinstance(value, dict) or value.get("h") != host:
            return None  # a cookie of another preview's host opens nothing here
        return self._session(str(value.get("s")))

    def _session(self, sid: str) -> tuple[str, str, str] | None:
        found = self.sealer.open(self.store.get(f"preview-auth:session:{sid}"))
        if found is None:
            return None
        return sid, str(found["login"]), str(found["token"])

    def _redeem(self, ticket: str, host: str) -> str | None:
        raw = self.store.getdel(f"preview-auth:ticket:{ticket}")  # once only
        if raw is None:
            return None
        found = json.loads(raw)
        return str(found["sid"]) if found.get("host") == host else None

    def _can_read(self, sid: str, token: str, repository: str) -> bool:
        key = f"preview-auth:read:{sid}:{repository}"
        cached = self.store.get(key)
        if cached is not None:
            return bool(cached == b"1")
        allowed = self.oauth.can_read(token, repository)
        self.store.set(key, b"1" if allowed else b"0", ex=int(self.settings.access_cache_ttl.total_seconds()))
        return allowed

    # --- sign-in ------------------------------------------------------------------------

    def signin_url(self, back_to: str) -> str:
        return f"{self.settings.public_url}/auth/signin?rd={quote(back_to, safe='')}"

    def preview_url(self, url: str) -> str | None:
        """`url` when it is a preview's address as a browser reads it, else None: the sign-in
        never redirects anywhere else."""
        # Plain http only where the service itself runs without TLS (a test bed, a laptop).
        plain = self.settings.public_url.startswith("http://")
        schemes = ("http", "https") if plain else ("https",)
        return redirects.preview_url(url, self.settings.preview_domain, self.settings.preview_port, schemes)

    def start(self, back_to: str) -> tuple[str, str]:
        """Gitea's authorize URL, and the nonce for the browser's cookie (ties the callback to it)."""
        return self.signin.start(back_to)

    def finish(self, code: str, state: str, nonce: str | None) -> str:
        """Exchange the code, keep the session, and return the preview URL carrying a ticket.
        ValueError when the state is not the one this browser started with."""
        signed_in = self.signin.finish(code, state, nonce)
        back_to = self.preview_url(signed_in.back_to)
        if back_to is None:
            raise ValueError("not a preview address")
        sid = secrets.token_urlsafe(24)
        session = self.sealer.seal({"login": signed_in.login, "token": signed_in.token})
        self.store.set(f"preview-auth:session:{sid}", session, ex=min(signed_in.lifetime, SESSION_SECONDS))
        ticket = secrets.token_urlsafe(24)
        host = (urlsplit(back_to).hostname or "").lower()
        self.store.set(f"preview-auth:ticket:{ticket}", json.dumps({"sid": sid, "host": host}), ex=TICKET_SECONDS)
        parts = urlsplit(back_to)
        query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), (TICKET_PARAM, ticket)])
        return urlunsplit(parts._replace(query=query))
