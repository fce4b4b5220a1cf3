"""One cgroup parent for everything the real node runs (cgroup v1, per-controller hierarchies).

The kubelet puts its pods below it (`cgroupRoot`), the node's daemons run in it,
and removing it kills whatever is still inside: nothing else of the machine's
cgroups is read for writing or touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    """The mounted v1 hierarchies (cpu, memory, ..., name=systemd); not the unified one."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mount_point = fields[4]
        fstype = fields[fields.index("-") + 1]
        if fstype == "cgroup" and mount_point.startswith(str(CGROUP_FS)):
            found.append(Path(mount_point))
    return sorted(found)


class CgroupParent:
    def __init__(self, name: str) -> None:
        self.name = name  # the kubelet's cgroupRoot is "/" + name
        self.paths = [root / name for root in hierarchies()]

    def create(self) -> None:
        for path in self.paths:
            path.mkdir()
            if (path / "cpuset.cpus").exists():
                # A new cpuset has no CPUs and no memory nodes: take the parent's, or nothing can join it.
                for key in ("cpuset.cpus", "cpuset.mems"):
                    (path / key).write_text((path.parent / key).read_text())

    def join(self, pid: int) -> None:
        for path in self.paths:
            (path / "cgroup.procs").write_text(str(pid))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.paths:
            for procs in path.rglob("cgroup.procs") if path.exists() else ():
                found.update(int(pid) for pid in procs.read_text().split())
        return found

    def remove(self, timeout: float = 20.0) -> None:
        """Kill what is left inside until nothing is (a fork in between is caught next round), then remove
        the cgroups deepest first."""
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for path in self.paths:
            if not path.exists():
                continue
            for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                _rmdir(child, deadline)
            _rmdir(path, deadline)

    def leftovers(self) -> list[str]:
        return [f"cgroup {path}" for path in self.paths if path.exists()]


def _rmdir(path: Path, deadline: float) -> None:
    # A cgroup whose last task has just died can stay busy for a moment.
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
