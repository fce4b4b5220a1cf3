"""Small helpers for tests that observe the control plane."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def unique_name(hint: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-")[:40].strip("-")
    return f"{base}-{uuid.uuid4().hex[:6]}"


def eventually(probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.2, what: str = "") -> T:
    """Call `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or probe} (last value: {last!r})")


def namespace_gone(kube_api, name: str) -> bool:
    """True once the namespace no longer exists (its deletion has finalized)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.CoreV1Api(kube_api).read_namespace(name)
    except ApiException as error:
        return error.status == 404
    return False
