"""A progress report reaches Gitea only if its state lasts, and never after the next one."""

from __future__ import annotations

import threading
import time

from app.usecases.deploy.runs import ProgressReport


def test_a_state_that_lasts_is_reported_without_waiting_for_the_run():
    sent = threading.Event()
    report = ProgressReport(sent.set, delay=0.01)
    assert sent.wait(5)
    report.settle()


def test_a_state_that_ends_sooner_is_never_reported():
    sent: list[str] = []
    report = ProgressReport(lambda: sent.append("deploying"), delay=5)
    started = time.monotonic()
    report.settle()
    assert time.monotonic() - started < 1  # settling does not sit out the delay
    time.sleep(0.05)
    assert sent == []


def test_settling_waits_for_a_report_already_on_its_way():
    order: list[str] = []
    sending = threading.Event()

    def slow_send() -> None:
        sending.set()
        time.sleep(0.2)
        order.append("deploying")

    report = ProgressReport(slow_send, delay=0)
    assert sending.wait(5)
    report.settle()
    order.append("ready")
    assert order == ["deploying", "ready"]
