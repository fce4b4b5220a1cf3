"""The ingress adapter against a real HTTP server standing in for the proxy's entrypoint."""

from __future__ import annotations

import base64
import http.server
import threading

import pytest

from app.adapters.routes import IngressRoutes
from tests.testbed.servers import free_port


@pytest.fixture
def entrypoint():
    seen: list[dict[str, str]] = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802: the standard library's name
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            status = 302 if self.path == "/moved" else 200 if self.headers.get("Host") == "app.test" else 404
            self.send_response(status)
            if status == 302:
                self.send_header("Location", "/elsewhere")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def routes_to(entrypoint):
    made: list[IngressRoutes] = []

    def make(url: str) -> IngressRoutes:
        made.append(IngressRoutes(url))
        return made[-1]

    yield make
    for routes in made:
        routes.session.close()


def test_the_preview_s_host_and_password_are_sent_and_the_status_returned(entrypoint, routes_to):
    url, seen = entrypoint
    routes = routes_to(url)
    assert routes.status_of("app.test", "/health", ("preview", "secret")) == 200
    assert seen[-1]["path"] == "/health"
    assert seen[-1]["host"] == "app.test"
    assert seen[-1]["authorization"] == "Basic " + base64.b64encode(b"preview:secret").decode()
    assert routes.status_of("other.test", "/", None) == 404
    assert "authorization" not in seen[-1]


def test_a_redirect_is_the_answer_not_followed(entrypoint, routes_to):
    url, seen = entrypoint
    assert routes_to(url).status_of("app.test", "/moved", None) == 302
    assert [request["path"] for request in seen] == ["/moved"]


def test_nothing_listening_is_no_answer(routes_to):
    assert routes_to(f"http://127.0.0.1:{free_port()}").status_of("app.test", "/", None) is None
