"""Sign-in with Gitea in front of previews, end to end with real parts: Debian's nginx as
the preview's front (auth_request to our forward-auth endpoint, the contract ingress-nginx
uses), a small local upstream standing in for the app, the real Gitea as OAuth2 provider
(its application made through its API) and headless Chromium driven by playwright.

Chromium resolves every *.localhost name to the loopback address, so each preview gets
its own host (and its own cookies) without any DNS.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import redis
import requests
from werkzeug.serving import make_server

from app import create_app
from app.db import database
from app.domain.states import PreviewState
from app.migrations import apply_migrations
from app.models import Preview, Repository
from app.usecases.access.preview_access import COOKIE
from tests.testbed.browser import sign_in_through_gitea
from tests.testbed.gitea_server import ADMIN
from tests.testbed.servers import die_with_parent, free_port, quiet_request_log, stop_process, wait_for_port

pytestmark = [pytest.mark.gitea, pytest.mark.slow]

NGINX_CONF = """
worker_processes 1;
daemon off;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
{user}
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/tmp; proxy_temp_path {prefix}/tmp; fastcgi_temp_path {prefix}/tmp;
  uwsgi_temp_path {prefix}/tmp; scgi_temp_path {prefix}/tmp;
{servers}
}}
"""

# One server per preview, as ingress-nginx makes them: its own upstream, and an auth address
# that names its preview. X-Original-URL is built from the Host header as ingress-nginx does.
NGINX_SERVER = """
  server {{
    listen 127.0.0.1:{port};
    server_name {slug}.preview.localhost;
    location / {{
      auth_request /_preview_auth;
      auth_request_set $preview_cookie $upstream_http_set_cookie;
      add_header Set-Cookie $preview_cookie;
      error_page 401 = @signin;
      proxy_set_header Host $http_host;
      proxy_pass http://127.0.0.1:{app_port};
    }}
    location = /_preview_auth {{
      internal;
      proxy_pass {service}/auth/preview/{slug};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
    }}
    # ingress-nginx escapes the URI ($escaped_request_uri, from a module nginx-light lacks);
    # the paths asked for here need no escaping.
    location @signin {{
      return 302 {service}/auth/signin?rd=$scheme://$http_host$request_uri;
    }}
  }}
"""


class App(BaseHTTPRequestHandler):
    """A preview's app: says which preview it is (not which host it was asked for)."""

    serves = ""

    def do_GET(self) -> None:
        body = f"<html><body><h1 id=app>the app at {self.serves}</h1></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def database_url(postgres_server):
    return postgres_server.create_database(f"signin_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def world(gitea, settings, tmp_path):
    """Two private repositories (a reader may read the first only), their previews, the service
    with PREVIEW_ACCESS=gitea, nginx in front and the app behind."""
    suffix = uuid.uuid4().hex[:6]
    readable, other = f"{ADMIN}/signin-a-{suffix}", f"{ADMIN}/signin-b-{suffix}"
    for full_name in (readable, other):
        gitea.api("POST", "/user/repos", json={"name": full_name.split("/")[1], "private": True})
    reader, outsider = f"reader{suffix}", f"outsider{suffix}"
    passwords = {reader: gitea.create_user(reader), outsider: gitea.create_user(outsider)}
    gitea.api("PUT", f"/repos/{readable}/collaborators/{reader}", json={"permission": "read"})

    service_port, nginx_port = free_port(), free_port()
    service = f"http://127.0.0.1:{service_port}"
    oauth_app = gitea.api(
        "POST",
        "/user/applications/oauth2",
        json={"name": f"previews-{suffix}", "redirect_uris": [f"{service}/auth/callback"], "confidential_client": True},
    )
    configured = settings.replace(
        gitea_url=gitea.url,
        gitea_token=gitea.bot_token,
        public_url=service,
        preview_domain="preview.localhost",
        preview_port=nginx_port,
        access="gitea",
        oauth_client_id=oauth_app["client_id"],
        oauth_client_secret=oauth_app["client_secret"],
        session_secret="session-" + uuid.uuid4().hex,
    )
    flask_app = create_app(configured)
    with database.connection_context():
        apply_migrations(database.obj)
        slugs = {}
        for full_name in (readable, other):
            repository = Repository.upsert(full_name, f"{gitea.url}/{full_name}.git", private=True)
            slug = f"{full_name.split('/')[1]}-pr-1"
            Preview.create(
                repository=repository,
                target_key=f"{full_name}#1",
                pr_number=1,
                branch="feature",
                head_sha="a" * 40,
                state=PreviewState.READY,
                slug=slug,
            )
            slugs[full_name] = slug
    quiet_request_log()
    server = make_server("127.0.0.1", service_port, flask_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    apps = {}
    for slug in slugs.values():
        handler = type("App", (App,), {"serves": f"{slug}.preview.localhost"})
        apps[slug] = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=apps[slug].serve_forever, daemon=True).start()
    upstreams = {slug: app.server_address[1] for slug, app in apps.items()}
    nginx = start_nginx(tmp_path, nginx_port, upstreams, service)
    try:
        yield {
            "url": {name: f"http://{slug}.preview.localhost:{nginx_port}/" for name, slug in slugs.items()},
            "readable": readable,
            "other": other,
            "reader": (reader, passwords[reader]),
            "outsider": (outsider, passwords[outsider]),
            "nginx_port": nginx_port,
            "service": service,
            "redis_url": configured.redis_url,
        }
    finally:
        stop_process(nginx)
        for running in (server, *apps.values()):
            running.shutdown()
            running.server_close()


def start_nginx(folder: Path, port: int, upstreams: dict[str, int], service: str) -> subprocess.Popen:
    """nginx with a server for each preview slug, in front of its app's port."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    (folder / "tmp").mkdir()
    user = "user root;" if os.geteuid() == 0 else ""
    servers = "".join(
        NGINX_SERVER.format(port=port, slug=slug, app_port=app_port, service=service)
        for slug, app_port in upstreams.items()
    )
    conf = NGINX_CONF.format(prefix=folder, servers=servers, user=user)
    (folder / "nginx.conf").write_text(conf)
    process = subprocess.Popen(
        [binary, "-c", str(folder / "nginx.conf"), "-p", str(folder)],
        stderr=subprocess.DEVNULL,  # its error_log is in the folder
        preexec_fn=die_with_parent,
    )
    wait_for_port(port, process)
    return process


def at_preview(url: str, cookie: str | None = None) -> requests.Response:
    """GET a preview URL as a browser would (glibc resolves no *.localhost name: connect to the
    loopback address and say the host)."""
    parts = urlsplit(url)
    headers = {"Host": parts.netloc}
    if cookie:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    loopback = urlunsplit(parts._replace(netloc=f"127.0.0.1:{parts.port}"))
    return requests.get(loopback, headers=headers, allow_redirects=False, timeout=10)


def test_without_a_cookie_the_preview_sends_to_gitea(world, gitea):
    url = world["url"][world["readable"]]
    first = at_preview(url)
    assert first.status_code == 302
    assert first.headers["Location"].startswith(f"{world['service']}/auth/signin?rd=")
    signin = requests.get(first.headers["Location"], allow_redirects=False, timeout=10)
    assert signin.status_code == 302
    assert signin.headers["Location"].startswith(f"{gitea.url}/login/oauth/authorize?")
    assert "scope=read%3Auser+read%3Arepository" in signin.headers["Location"]
    # The sign-in never sends anyone anywhere but a preview.
    elsewhere = requests.get(f"{world['service']}/auth/signin", params={"rd": "https://evil.test/"}, timeout=10)
    assert elsewhere.status_code == 400


def reader_at_readable_preview(world, browser):
    """A new browser context in which the reader signed in at the readable preview, and its page."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(world["url"][world["readable"]])
    sign_in_through_gitea(page, *world["reader"])
    page.wait_for_selector("#app")
    return context, page


def test_a_reader_signs_in_and_sees_the_app_and_the_cookie_opens_nothing_else(world, browser, tmp_path):
    context, page = reader_at_readable_preview(world, browser)
    readable_url, other_url = world["url"][world["readable"]], world["url"][world["other"]]
    host = readable_url.split("//")[1].split(":")[0]
    assert page.inner_text("#app") == f"the app at {host}"
    page.screenshot(path=str(tmp_path / "signed-in.png"))

    cookies = {c["name"]: c for c in context.cookies()}
    preview_cookie = cookies[COOKIE]
    # The user's Gitea token is sealed at rest in Redis: no session record shows it (or the login).
    store = redis.Redis.from_url(world["redis_url"])
    records = [store.get(key) for key in store.scan_iter("preview-auth:session:*")]
    assert records
    assert not any(world["reader"][0].encode() in record for record in records)
    assert preview_cookie["domain"] == host  # host-only: no other preview receives it
    assert preview_cookie["httpOnly"]
    # The same cookie, presented at another repository's preview, opens nothing there.
    replayed = at_preview(other_url, preview_cookie["value"])
    assert replayed.status_code == 302
    assert "/auth/signin" in replayed.headers["Location"]
    again = at_preview(readable_url, preview_cookie["value"])
    assert again.status_code == 200
    assert "the app at" in again.text

    # Signed in to Gitea already: at the other preview only the repository decides, and it says no.
    response = page.goto(other_url)
    page.wait_for_load_state()
    assert response is not None
    assert page.url.startswith(other_url)
    assert "403" in page.content()
    assert "the app at" not in page.content()
    context.close()


def test_a_user_without_access_gets_403(world, browser):
    context = browser.new_context()
    page = context.new_page()
    page.goto(world["url"][world["readable"]])
    sign_in_through_gitea(page, *world["outsider"])
    assert "403" in page.content()
    assert "the app at" not in page.content()
    assert page.url.startswith(world["url"][world["readable"]])
    context.close()


def absolute_form(url: str, host: str, cookie: str) -> tuple[int, str]:
    """`GET http://B/` with `Host: A`: nginx picks the server by the request line, while the
    Host header (and X-Original-URL made from it) names another preview."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=10)
    try:
        connection.putrequest("GET", url, skip_host=True)
        connection.putheader("Host", host)
        connection.putheader("Cookie", f"{COOKIE}={cookie}")
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, answer.read().decode(errors="replace")
    finally:
        connection.close()


def test_a_cookie_for_one_preview_never_opens_another_whatever_the_request_claims(world, browser):
    context, _ = reader_at_readable_preview(world, browser)
    readable_url, other_url = world["url"][world["readable"]], world["url"][world["other"]]
    cookie = next(c["value"] for c in context.cookies() if c["name"] == COOKIE)
    context.close()
    readable_host, other_host = urlsplit(readable_url).netloc, urlsplit(other_url).hostname
    assert absolute_form(readable_url, readable_host, cookie)[0] == 200  # the cookie works where it belongs

    status, body = absolute_form(other_url, readable_host, cookie)
    assert status != 200
    assert f"the app at {other_host}" not in body

    # Asked directly, with the other preview's slug in the address, a forged original URL opens nothing;
    # neither does an address that names no preview.
    other_slug = other_host.split(".")[0]
    forged = {"X-Original-URL": f"http://{readable_host}/", "X-Forwarded-Host": readable_host}
    for path in (f"/auth/preview/{other_slug}", f"/auth/forward/{other_slug}", "/auth/forward", "/auth/preview"):
        answer = requests.get(
            world["service"] + path, headers=forged, cookies={COOKIE: cookie}, allow_redirects=False, timeout=10
        )
        assert answer.status_code in (302, 401, 403), path
        assert "X-Preview-User" not in answer.headers, path


def test_after_sign_in_the_browser_is_never_on_another_host(world, browser):
    """A target that Python reads as a preview's address and a browser as another site is refused."""
    host = urlsplit(world["url"][world["readable"]]).netloc
    context = browser.new_context()
    page = context.new_page()
    for sneaky in (f"http://evil.localhost\\.{host}/", f"http://evil\\@{host}/", f"http://{host}\t.evil.test/"):
        answer = page.goto(f"{world['service']}/auth/signin?rd={quote(sneaky, safe='')}")
        assert answer is not None
        assert answer.status == 400
        assert urlsplit(page.url).netloc == urlsplit(world["service"]).netloc
    # A real preview's address goes through sign-in and lands on that preview only.
    page.goto(world["url"][world["readable"]])
    sign_in_through_gitea(page, *world["reader"])
    page.wait_for_selector("#app")
    assert urlsplit(page.url).netloc == host
    context.close()
