"""The service's Python dependencies as wheels, served to the node's build pods.

The node has no route out (tests/testbed/node/netns.py), so the kaniko build of the service's
own image cannot reach PyPI: it installs from this folder instead, through pip's own
variables (PIP_NO_INDEX, PIP_FIND_LINKS), which the Dockerfile takes as build arguments
the way an operator behind a mirror would. The folder is made once per set of
requirements with this machine's pip (which may reach PyPI) and kept in the tools cache.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.testbed.kube.controlplane import tools_bin
from tests.testbed.service_processes import ROOT

# What the build backend needs besides the requirements: pip builds our package in isolation.
BUILD_REQUIREMENTS = ("setuptools>=68", "wheel")
# The node's `python` image is Debian's python3 (tests/testbed/node/images.py): the wheels are
# resolved by that same interpreter, so that markers such as `python_full_version < "3.11.3"`
# (redis's async-timeout) are decided for the Python that installs them, not for this venv's.
IMAGE_PYTHON = "/usr/bin/python3"


def _image_python_version() -> str:
    found = subprocess.run([IMAGE_PYTHON, "--version"], check=True, capture_output=True, text=True)
    return found.stdout.strip()


def _key() -> str:
    inputs = [(ROOT / name).read_bytes() for name in ("setup.cfg", "pyproject.toml")]
    inputs.append(f"{_image_python_version()} {BUILD_REQUIREMENTS}".encode())
    return hashlib.sha256(b"\0".join(inputs)).hexdigest()[:16]


def wheelhouse() -> Path:
    """The folder of wheels for this setup.cfg (made on first use)."""
    folder = tools_bin().parent / "wheels" / _key()
    if (folder / "complete").exists():
        return folder
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    pip_venv = folder.with_name(folder.name + ".venv")
    shutil.rmtree(pip_venv, ignore_errors=True)
    subprocess.run([IMAGE_PYTHON, "-m", "venv", str(pip_venv)], check=True, timeout=300)
    subprocess.run(
        [
            str(pip_venv / "bin" / "python"),
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(staging),
            str(ROOT),
            *BUILD_REQUIREMENTS,
        ],
        check=True,
        timeout=900,
    )
    shutil.rmtree(pip_venv)
    for own in staging.glob("gitea_previews-*.whl"):
        own.unlink()  # the image builds the package from the commit's source, never from here
    (staging / "complete").write_text("")
    for old in folder.parent.glob("*"):
        if old != staging:
            shutil.rmtree(old)
    staging.rename(folder)
    return folder


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def served(folder: Path) -> Iterator[int]:
    """Serve `folder` read-only on a loopback port (a directory listing is a find-links page)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="wheelhouse", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
