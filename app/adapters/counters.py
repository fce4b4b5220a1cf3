"""Counters in Redis that every process adds to and /metrics reads: refused webhooks, the
scheduler's sweeps. Shared state, so any web process answers the same and restarts lose nothing."""

from __future__ import annotations

from typing import Any

import redis

from app.usecases.ports import CountersUnavailable

SWEEP_RUNS_KEY = "previews:metrics:sweeps"
SWEEP_REMOVED_KEY = "previews:metrics:sweep_removed"  # hash: kind -> count
SWEEP_REFUSED_KEY = "previews:metrics:sweep_refused"  # 1 while the last pass's sweep refused to delete
WEBHOOKS_REFUSED_KEY = "previews:metrics:webhooks_refused"  # hash: reason -> count


class RedisCounters:
    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection

    def webhook_refused(self, reason: str) -> None:
        try:
            self.connection.hincrby(WEBHOOKS_REFUSED_KEY, reason, 1)
        except redis.RedisError as error:
            raise CountersUnavailable(str(error)) from error

    def record_sweep(self, removed: dict[str, int], refused: bool) -> None:
        """One scheduler pass: counted, what it removed added up, whether its sweep refused."""
        try:
            pipe = self.connection.pipeline()
            pipe.incr(SWEEP_RUNS_KEY)
            pipe.set(SWEEP_REFUSED_KEY, 1 if refused else 0)
            for kind, count in removed.items():
                if count:
                    pipe.hincrby(SWEEP_REMOVED_KEY, kind, count)
            pipe.execute()
        except redis.RedisError as error:
            raise CountersUnavailable(str(error)) from error

    def read(self) -> dict[str, Any]:
        """sweeps, sweep_refused (0 or 1), sweep_removed {kind: n}, webhooks_refused {reason: n}."""
        try:
            return {
                "sweeps": int(self.connection.get(SWEEP_RUNS_KEY) or 0),
                "sweep_refused": int(self.connection.get(SWEEP_REFUSED_KEY) or 0),
                "sweep_removed": self._hash(SWEEP_REMOVED_KEY),
                "webhooks_refused": self._hash(WEBHOOKS_REFUSED_KEY),
            }
        except redis.RedisError as error:
            raise CountersUnavailable(str(error)) from error

    def _hash(self, key: str) -> dict[str, int]:
        raw: dict[Any, Any] = self.connection.hgetall(key)  # type: ignore[assignment]
        return {k.decode() if isinstance(k, bytes) else str(k): int(v) for k, v in raw.items()}
