"""Reads started before their arguments are confirmed, so that they overlap the read that
confirms them (Gitea's PR). A read started early answers only a later ask with the very
same arguments; any other ask is read then. A wrong guess costs a wasted read, never a
wrong answer, and an early answer is as fresh as the PR read beside it."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

Read = tuple[Callable[..., Any], tuple[Any, ...]]


def _key(read: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (getattr(read, "__qualname__", repr(read)), *args)


class Lookahead:
    def __init__(self, reads: list[Read]) -> None:
        self._started: dict[tuple[Any, ...], Future[Any]] = {}
        if not reads:
            return
        pool = ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="lookahead")
        for read, args in reads:
            self._started[_key(read, args)] = pool.submit(read, *args)
        pool.shutdown(wait=False)  # the reads go on; the threads end with them

    def ask(self, read: Callable[..., Any], *args: Any) -> Any:
        """`read(*args)`: the answer of the same read started early (its error raised here, as
        the read's own would be), else a read made now."""
        started = self._started.pop(_key(read, args), None)
        return started.result() if started is not None else read(*args)

    def peek(self, read: Callable[..., Any], *args: Any) -> Any:
        """The answer of the same read started early, once it has come, left for ask();
        None when none was started or it failed."""
        started = self._started.get(_key(read, args))
        if started is None or started.exception() is not None:
            return None
        return started.result()


def now(read: Callable[..., Any], *args: Any) -> Any:
    """Lookahead.ask's stand-in when nothing was started early."""
    return read(*args)
