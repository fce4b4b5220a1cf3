"""A deploy waits until the data plane routes the preview's host to its app."""

from __future__ import annotations

from app.usecases.deploy import routed


class Answers:
    """The data plane's answers, one per ask, the last one repeated."""

    def __init__(self, *statuses: int | None) -> None:
        self.statuses, self.asked = list(statuses), []
        self.configured = True

    def status_of(self, host: str, path: str, auth: tuple[str, str] | None) -> int | None:
        self.asked.append((host, path, auth))
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


def test_the_proxys_own_answers_are_waited_out_until_the_app_answers():
    answers = Answers(None, 404, 503, 502, 302)
    auth = ("preview", "secret")
    assert routed.wait_until_routed(answers, "shop-pr-1.preview.test", "/health", auth, 5, lambda: False)
    assert len(answers.asked) == 5
    assert answers.asked[0] == ("shop-pr-1.preview.test", "/health", auth)


def test_a_route_that_never_comes_ends_the_wait_at_its_timeout():
    answers = Answers(503)
    assert not routed.wait_until_routed(answers, "h", "/", None, 0.3, lambda: False)
    assert 2 <= len(answers.asked) <= 5


def test_work_no_longer_wanted_stops_the_wait():
    answers = Answers(404)
    assert not routed.wait_until_routed(answers, "h", "/", None, 30, lambda: True)
    assert len(answers.asked) == 1
