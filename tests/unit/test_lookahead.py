"""A read started early answers only the same read asked later; anything else is read then."""

from __future__ import annotations

import threading

import pytest

from app.usecases.deploy.lookahead import Lookahead


class Reads:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def permission(self, repository: str, login: str) -> str:
        with self.lock:
            self.asked.append((repository, login))
        if login == "ghost":
            raise LookupError("Gitea is down")
        return "write" if login == "alice" else "read"


def test_the_same_read_is_answered_from_the_early_one_and_only_once():
    reads = Reads()
    early = Lookahead([(reads.permission, ("acme/shop", "alice"))])
    assert early.ask(reads.permission, "acme/shop", "alice") == "write"
    assert reads.asked == [("acme/shop", "alice")]
    assert early.ask(reads.permission, "acme/shop", "alice") == "write"  # asked again: read again
    assert len(reads.asked) == 2


def test_a_guess_the_pr_does_not_confirm_is_not_used():
    reads = Reads()
    early = Lookahead([(reads.permission, ("acme/shop", "alice"))])
    # The PR's author is bob, not the delivery's sender: bob's access is read, alice's is not used.
    assert early.ask(reads.permission, "acme/shop", "bob") == "read"
    assert ("acme/shop", "bob") in reads.asked


def test_an_early_reads_error_is_raised_where_it_is_asked_for():
    reads = Reads()
    early = Lookahead([(reads.permission, ("acme/shop", "ghost"))])
    with pytest.raises(LookupError, match="Gitea is down"):
        early.ask(reads.permission, "acme/shop", "ghost")


def test_peek_waits_for_the_early_answer_and_leaves_it_for_ask():
    reads = Reads()
    early = Lookahead([(reads.permission, ("acme/shop", "alice"))])
    assert early.peek(reads.permission, "acme/shop", "alice") == "write"
    assert early.ask(reads.permission, "acme/shop", "alice") == "write"
    assert reads.asked == [("acme/shop", "alice")]


def test_peek_says_nothing_of_a_read_not_started_or_failed():
    reads = Reads()
    early = Lookahead([(reads.permission, ("acme/shop", "ghost"))])
    assert early.peek(reads.permission, "acme/shop", "bob") is None
    assert reads.asked == [("acme/shop", "ghost")]  # peek reads nothing itself
    assert early.peek(reads.permission, "acme/shop", "ghost") is None
    with pytest.raises(LookupError):  # the failure is still ask's to raise
        early.ask(reads.permission, "acme/shop", "ghost")
