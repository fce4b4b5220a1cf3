"""Ready for the reviewer, not only for the cluster: the app's Deployment is available a moment
before the ingress controller or gateway routes its host to it (it learns of the route and the
endpoints from watches of its own, and may batch them). Until then a reviewer or an agent that
follows the link at once gets the proxy's 404 or 503.

With PREVIEW_INGRESS_URL the deploy asks the data plane for the app's health path, as the
reviewer would (with the preview's password), until the app answers it as the readiness
probe wants (200 to 399): the proxy's own answers while it does not route are 404, 502
and 503. Not with Gitea sign-in: there the sign-in answers before the app does."""

from __future__ import annotations

import time
from collections.abc import Callable

from app.usecases.ports import Routes

INTERVAL_SECONDS = 0.1


def wait_until_routed(
    routes: Routes, host: str, path: str, auth: tuple[str, str] | None, timeout: float, should_stop: Callable[[], bool]
) -> bool:
    """True once the data plane answers `path` for `host` from the app; False at `timeout`
    seconds, or when the work is no longer wanted."""
    deadline = time.monotonic() + timeout
    while True:
        status = routes.status_of(host, path, auth)
        if status is not None and 200 <= status < 400:
            return True
        if time.monotonic() >= deadline or should_stop():
            return False
        time.sleep(INTERVAL_SECONDS)
