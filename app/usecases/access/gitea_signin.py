"""The OAuth2 round trip with Gitea that both sign-ins share (preview access, dashboard):
a signed state carrying where to go back to and a nonce the browser keeps in a cookie
(so a callback only completes a sign-in that browser started), then the code exchange."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.usecases.ports import SignInProvider

SIGNIN_SECONDS = 600


@dataclass(frozen=True)
class SignedIn:
    back_to: str
    login: str
    token: str
    lifetime: int  # seconds the token lives


class GiteaSignin:
    def __init__(self, oauth: SignInProvider, signer: URLSafeTimedSerializer, purpose: str) -> None:
        # The purpose is in the state's salt: a state made for one sign-in is refused by the other.
        self.oauth, self.signer, self.salt = oauth, signer, f"signin-state:{purpose}"

    def start(self, back_to: str) -> tuple[str, str]:
        """Gitea's authorize URL, and the nonce for the browser's cookie."""
        nonce = secrets.token_urlsafe(16)
        state = self.signer.dumps({"back": back_to, "n": nonce}, salt=self.salt)
        return self.oauth.authorize_url(state), nonce

    def finish(self, code: str, state: str, nonce: str | None) -> SignedIn:
        """Who signed in, with their token. ValueError when this browser did not start this sign-in
        (or it is too old); GiteaError when Gitea refuses the code."""
        try:
            value = self.signer.loads(state, salt=self.salt, max_age=SIGNIN_SECONDS)
        except BadSignature:
            raise ValueError("the sign-in state is invalid or expired; start again") from None
        if not nonce or not secrets.compare_digest(str(value.get("n")), nonce):
            raise ValueError("this sign-in was not started in this browser; start again")
        token, lifetime = self.oauth.exchange(code)
        return SignedIn(str(value["back"]), self.oauth.login(token), token, lifetime)
