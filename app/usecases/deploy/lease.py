"""One actor per preview: a lease row-lock with an owner and an expiry, renewed while working.

It lives in the preview's row, so it works the same on SQLite and PostgreSQL and
across machines. A worker that dies stops renewing; after `ttl` the lease is
free again and the scheduler resumes the work. Expiries are written and compared
by the database's clock, never a process's own.

The owner is the fencing token: every write a worker makes to the preview's row is
conditional on it, and before each side effect outside the row (an apply, a delete,
a drop) the worker asks `lost`. A worker counts its lease lost once a renewal is
refused (someone took over after it stalled) or once no renewal has succeeded for
`ttl` by its own monotonic clock (it was paused, or the database was unreachable):
from then on the lease may be someone else's, so it stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

from app.db import database, database_now
from app.models import Preview

log = logging.getLogger(__name__)


class LeaseHeld(Exception):
    """Another worker is acting on this preview; come back later."""


class Lease:
    def __init__(self, preview_id: int, ttl: timedelta, owner: str | None = None) -> None:
        self.preview_id = preview_id
        self.ttl = ttl
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._valid_until = 0.0  # monotonic: the lease is surely ours until then

    @property
    def lost(self) -> bool:
        if not self._lost.is_set() and time.monotonic() >= self._valid_until:
            self._lost.set()  # no renewal for a whole ttl: someone may hold it now
        return self._lost.is_set()

    def _held_from(self, asked_at: float) -> None:
        # Counted from before the request was sent: the row's expiry is at least that late.
        self._valid_until = asked_at + self.ttl.total_seconds()

    def acquire(self) -> bool:
        asked_at = time.monotonic()
        now = database_now()
        taken = Preview.take_lease(self.preview_id, self.owner, now + self.ttl, now)
        if taken:
            self._held_from(asked_at)
        return taken

    def renew(self) -> bool:
        """Extend the lease; False (and lost for good) when it is no longer ours."""
        if self.lost:
            return False
        asked_at = time.monotonic()
        if Preview.renew_lease(self.preview_id, self.owner, database_now() + self.ttl):
            self._held_from(asked_at)
        else:
            self._lost.set()
        return not self.lost

    def release(self) -> None:
        Preview.release_lease(self.preview_id, self.owner)

    def _keep_renewing(self) -> None:
        # Its own connection: peewee's are per thread.
        interval = self.ttl.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                with database.connection_context():
                    if not self.renew():
                        log.warning("lease lost preview_id=%s owner=%s", self.preview_id, self.owner)
                        return
            except Exception:  # a database hiccup: try again next time, the lease has slack
                log.exception("lease renewal failed preview_id=%s", self.preview_id)

    def start_renewing(self) -> None:
        self._renewer = threading.Thread(target=self._keep_renewing, name=f"lease-{self.preview_id}", daemon=True)
        self._renewer.start()

    def stop_renewing(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()


@contextlib.contextmanager
def hold_if_free(preview_id: int, ttl: timedelta) -> Iterator[Lease | None]:
    """Hold the preview's lease for the block, renewed in the background; None when another
    worker holds it (and nothing raised in the block is mistaken for that)."""
    lease = Lease(preview_id, ttl)
    if not lease.acquire():
        yield None
        return
    lease.start_renewing()
    try:
        yield lease
    finally:
        lease.stop_renewing()
        lease.release()


@contextlib.contextmanager
def hold(preview_id: int, ttl: timedelta) -> Iterator[Lease]:
    """Hold the preview's lease for the block, renewed in the background; raise LeaseHeld if taken."""
    with hold_if_free(preview_id, ttl) as lease:
        if lease is None:
            raise LeaseHeld(f"preview {preview_id} is being worked on by another worker")
        yield lease
