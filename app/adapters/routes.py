"""The data plane as a reviewer meets it: a GET for a preview's host through the ingress
controller or gateway (PREVIEW_INGRESS_URL), answering with its HTTP status."""

from __future__ import annotations

import requests

TIMEOUT_SECONDS = 2.0


class IngressRoutes:
    configured = True

    def __init__(self, ingress_url: str) -> None:
        self.ingress_url = ingress_url
        self.session = requests.Session()

    def status_of(self, host: str, path: str, auth: tuple[str, str] | None) -> int | None:
        """The status of `GET path` for `host`, not following redirects (a redirect is the app's
        answer); None when nothing answered."""
        try:
            response = self.session.get(
                self.ingress_url + path,
                headers={"Host": host},
                auth=auth,
                allow_redirects=False,
                timeout=TIMEOUT_SECONDS,
            )
        except requests.RequestException:
            return None
        response.close()
        return response.status_code
