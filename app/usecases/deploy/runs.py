"""One worker's deploy of one preview at one commit: the run, its checks and its phases.

Every change of the preview's row is conditional on what the run believed (its
commit, its state, its lease), so a webhook that recorded a newer commit meanwhile
is never undone: the run notices at its next check and stops as superseded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from app.db import utcnow
from app.domain.states import PreviewState
from app.models import Deployment, Event, Preview
from app.usecases.deploy import lease
from app.usecases.deploy.lookahead import Lookahead
from app.usecases.deploy.preview_config import FileRead
from app.usecases.ports import Services

# The seed's progress steps.
PROGRESS = {
    "queued": 0,
    "build": 20,
    "deploy": 40,
    "database": 50,
    "configure": 60,
    "rollout": 70,
    "report": 90,
    "ready": 100,
}


class Superseded(Exception):
    """A newer commit (or a teardown) took over this preview, or the lease was lost; stop quietly."""


class StepFailed(Exception):
    """The preview cannot be made ready at this commit; the message says why."""

    def __init__(self, phase: str, message: str, log_tail: str | None = None) -> None:
        super().__init__(message)
        self.phase = phase
        self.log_tail = log_tail


# How long a progress state ("deploying") must last before Gitea is told of it: a deploy done
# sooner goes straight to its final report, which then waits for no earlier one.
PROGRESS_REPORT_DELAY = 1.0


class ProgressReport:
    """A progress report sent from a thread of its own once its state has lasted
    PROGRESS_REPORT_DELAY, so that Gitea's round trips stay off the way to ready."""

    def __init__(self, send: Callable[[], None], delay: float = PROGRESS_REPORT_DELAY) -> None:
        self._dropped = threading.Event()
        self._thread = threading.Thread(target=self._send_unless_dropped, args=(send, delay), daemon=True)
        self._thread.start()

    def _send_unless_dropped(self, send: Callable[[], None], delay: float) -> None:
        if not self._dropped.wait(delay):
            send()

    def settle(self) -> None:
        """Drop the report if it has not started; wait for it if it has, so that Gitea sees
        the states in order. A dropped report's state is due in the outbox all the same:
        the run's next report, or the scheduler's, tells the newer state."""
        self._dropped.set()
        self._thread.join()


def wants(preview: Preview | None, sha: str) -> bool:
    """The preview still asks for a deploy of `sha` that has not concluded."""
    return preview is not None and preview.head_sha == sha and preview.state in PreviewState.DEPLOYING_STATES


@dataclass
class Run:
    """One worker's deploy of one preview at one commit, under the preview's lease."""

    services: Services
    lease: lease.Lease
    preview_id: int
    sha: str
    # A progress report not settled yet (pipeline._report_meanwhile): the run's next report waits for it.
    pending_report: ProgressReport | None = None
    # The PR as Gitea answered it earlier in the same job (None: read it when needed).
    pull: dict[str, Any] | None = None
    # The preview file's read started beside the PR's (None: read it when needed).
    preview_file: FileRead | None = None
    # The trust check's reads started beside the PR's (trust.read_ahead).
    trust_reads: Lookahead | None = None

    def wait_for_reports(self) -> None:
        if self.pending_report is not None:
            self.pending_report.settle()
            self.pending_report = None

    def stopped(self) -> bool:
        """Asked between waits: is this run's work still wanted, by the lease's holder?"""
        return self.lease.lost or not wants(Preview.get_or_none(Preview.id == self.preview_id), self.sha)

    def check(self) -> Preview:
        """The preview as it is now; Superseded when this run should stop."""
        preview: Preview | None = Preview.get_or_none(Preview.id == self.preview_id)
        if self.lease.lost or preview is None or not wants(preview, self.sha):
            raise Superseded(f"preview {self.preview_id} no longer wants {self.sha[:12]} from this worker")
        return preview

    def move(self, state: str, also: Any = None, **fields: Any) -> Preview:
        """Change the preview's state, only if it is still this run's to change (and `also` holds)."""
        changed = Preview.change(
            self.preview_id,
            sha=self.sha,
            states=PreviewState.DEPLOYING_STATES,
            owner=self.lease.owner,
            also=also,
            state=state,
            **fields,
        )
        if not changed:
            raise Superseded(f"preview {self.preview_id} moved on before it could become {state}")
        moved: Preview = Preview.get_by_id(self.preview_id)
        return moved


@contextmanager
def phase(preview: Preview, deployment: Deployment, name: str, message: str) -> Iterator[None]:
    """Record the phase's start as an Event, and its duration on the Event and the Deployment row."""
    started = time.monotonic()
    event = Event.record(preview, name, message, progress=PROGRESS.get(name))
    yield
    elapsed_ms = int((time.monotonic() - started) * 1000)
    Event.update(duration_ms=elapsed_ms).where(Event.id == event.id).execute()
    deployment.timings = {**(deployment.timings or {}), name: round(elapsed_ms / 1000, 3)}
    deployment.updated_at = utcnow()
    deployment.save()
