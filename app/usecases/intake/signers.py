"""Who may sign a delivery, known in memory: each web process keeps the registered
repositories' secrets and reads them again every few seconds.

Intake answers after one database round trip (the insert); looking the secret up in the
database first would be a second. A secret changed since the last read is noticed at once:
a signature that does not match makes the process read the secrets again (at most twice a
second) before it refuses. The other way round, a secret rotated out or a repository
removed may still be accepted here for up to `max_age`: the worker verifies every delivery
again against the database before it acts (app/usecases/intake/triage.py), and refuses it then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.domain.signature import signature_matches
from app.models import Repository


@dataclass(frozen=True)
class Signer:
    """A registered repository, as intake needs it."""

    repository_id: int
    full_name: str
    gitea_id: int | None
    secret: str


@dataclass(frozen=True)
class Verdict:
    signer: Signer | None  # the registered repository it claims (None: not registered)
    secret_known: bool  # there was a secret to check it with (its own, or the shared one)
    verified: bool


def registered_signers() -> list[Signer]:
    rows = Repository.select(Repository.id, Repository.full_name, Repository.gitea_id, Repository.webhook_secret).where(
        Repository.webhook_secret.is_null(False)
    )
    return [Signer(row.id, row.full_name, row.gitea_id, str(row.webhook_secret)) for row in rows]


class Signers:
    def __init__(
        self,
        shared_secret: str | None,
        max_age: float = 5.0,
        reread_after: float = 0.5,
        load: Callable[[], list[Signer]] = registered_signers,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shared_secret = shared_secret
        self.max_age = max_age
        self.reread_after = reread_after
        self._load = load
        self._clock = clock
        self._lock = threading.Lock()
        self._by_name: dict[str, Signer] = {}
        self._by_gitea_id: dict[int, Signer] = {}
        self._read_at: float | None = None

    def _read(self) -> None:
        signers = self._load()
        by_name = {signer.full_name.lower(): signer for signer in signers}
        by_gitea_id = {signer.gitea_id: signer for signer in signers if signer.gitea_id is not None}
        with self._lock:
            self._by_name, self._by_gitea_id, self._read_at = by_name, by_gitea_id, self._clock()

    def _age(self) -> float:
        return float("inf") if self._read_at is None else self._clock() - self._read_at

    def _lookup(self, name: str | None, gitea_id: int | None) -> Signer | None:
        """By name; else by Gitea's id, for a repository renamed since it was registered."""
        signer = self._by_name.get(name.lower()) if name else None
        if signer is None and gitea_id is not None:
            signer = self._by_gitea_id.get(gitea_id)
        return signer

    def _check(self, name: str | None, gitea_id: int | None, body: bytes, signature: str | None) -> Verdict:
        signer = self._lookup(name, gitea_id)
        secret = signer.secret if signer is not None else self.shared_secret
        if secret is None:
            return Verdict(signer, False, False)
        return Verdict(signer, True, signature_matches(secret, body, signature))

    def verify(self, name: str | None, gitea_id: int | None, body: bytes, signature: str | None) -> Verdict:
        """Whether `body` is signed by the secret of the repository it names (or the shared
        secret, for a repository that is not registered)."""
        if self._age() > self.max_age:
            self._read()
        verdict = self._check(name, gitea_id, body, signature)
        if not verdict.verified and self._age() > self.reread_after:
            # Registered or given a new secret since the last read: read again before refusing.
            self._read()
            verdict = self._check(name, gitea_id, body, signature)
        return verdict
