"""Debian's buildah building the same Dockerfile as our kaniko Job, for bench.push_to_page's
comparison: what an operator could run instead, on the same machine and registry.

buildah runs as root in this (the root) namespace with chroot isolation, which makes no
network namespace and no firewall rule, and with the vfs storage driver in a folder of its
own, which mounts nothing: a bench that stops half-way leaves only files behind. Its cache
is its local layers (`--layers`), where kaniko's is a repository in the registry.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

BUILDAH = "/usr/bin/buildah"


class Buildah:
    def __init__(self, folder: Path, registry: str, user: str, password: str) -> None:
        self.folder, self.registry, self.creds = folder, registry, f"{user}:{password}"
        self.storage = ["--root", str(folder / "root"), "--runroot", str(folder / "run"), "--storage-driver", "vfs"]

    @staticmethod
    def available() -> bool:
        return Path(BUILDAH).exists()

    def _run(self, *args: str) -> None:
        env = {**os.environ, "BUILDAH_ISOLATION": "chroot"}
        done = subprocess.run([BUILDAH, *self.storage, *args], capture_output=True, text=True, env=env, timeout=600)
        if done.returncode:
            raise RuntimeError(f"buildah {args[0]} failed: {done.stderr.strip()[-2000:]}")

    def build_and_push(self, context: Path, tag: str) -> float:
        """Seconds to build `context` (its Dockerfile) and push it to the registry as `tag`."""
        image = f"{self.registry}/bench/buildah:{tag}"
        started = time.perf_counter()
        self._run("bud", "--layers", "--tls-verify=false", "--creds", self.creds, "-t", image, str(context))
        self._run("push", "--tls-verify=false", "--creds", self.creds, image, f"docker://{image}")
        return time.perf_counter() - started

    def forget(self) -> None:
        """Drop every local layer: the next build is a cold one."""
        self._run("rm", "--all")
        self._run("rmi", "--all", "--force")
        shutil.rmtree(self.folder, ignore_errors=True)


def write_context(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder
