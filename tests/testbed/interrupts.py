"""A SIGTERM (a CI deadline, a `kill`) ends a test run or a benchmark the way Ctrl-C does: as
KeyboardInterrupt, so the fixtures' teardown and the context managers that started the servers
and the real node (its processes, mounts, network namespaces and cgroups) still run."""

from __future__ import annotations

import signal
import subprocess


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_like_ctrl_c() -> None:
    signal.signal(signal.SIGTERM, _interrupted)


def run_to_the_end(command: list[str]) -> int:
    """Run `command`; interrupted, pass a TERM on and wait for its teardown (subprocess.run would
    kill it outright), then go on being interrupted."""
    child = subprocess.Popen(command)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.terminate()
        child.wait()
        raise
