"""Liveness of the processes that answer no HTTP (the worker, the scheduler).

Each touches the file named by HEALTH_FILE while its loop turns: the worker at every
RQ heartbeat (RQ itself counts a worker dead without one for its worker TTL), the
scheduler after every pass. `python -m workers.health FILE MAX_AGE` is the chart's
exec probe: no shell, and it imports nothing of the service, so it costs little.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def touch() -> None:
    """Say the loop is alive (nothing without HEALTH_FILE: a process outside Kubernetes)."""
    path = os.environ.get("HEALTH_FILE")
    if path:
        Path(path).touch()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m workers.health FILE MAX_AGE_SECONDS", file=sys.stderr)
        return 2
    path, max_age = Path(args[0]), float(args[1])
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        print(f"{path} not written yet: the loop has not started", file=sys.stderr)
        return 1
    if age > max_age:
        print(f"{path} last written {age:.0f} s ago (more than {max_age:.0f} s): the loop is stuck", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
