"""What the forward-auth endpoint understands of each proxy's question, and where a sign-in may
send the browser (pure parsing); the sign-in itself is tested end to end in test_preview_signin.py."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import Headers

from app.domain.redirects import local_path, preview_url
from app.usecases.access.preview_access import TICKET_PARAM, original_request, without_ticket


@pytest.mark.parametrize(
    ("headers", "rest", "path"),
    [
        # nginx auth_request / ingress-nginx auth-url
        ({"X-Original-URL": "https://a.preview.example.com/x?y=1"}, "", "/x?y=1"),
        # Traefik ForwardAuth
        (
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.preview.example.com", "X-Forwarded-Uri": "/x?y=1"},
            "",
            "/x?y=1",
        ),
        # A proxy that appends the request's path to ours
        ({"Host": "a.preview.example.com", "X-Forwarded-Proto": "https"}, "x", "/x"),
    ],
)
def test_only_the_path_of_the_original_request_is_read(headers, rest, path):
    original = original_request(Headers(headers), rest)
    assert original is not None
    assert (original.path, original.secure) == (path, True)


def test_a_question_without_a_request_is_refused():
    assert original_request(Headers({"X-Original-URL": "javascript:alert(1)"}), "") is None
    assert original_request(Headers({"X-Forwarded-Uri": "evil.test/"}), "") is None


def test_the_ticket_is_taken_out_of_the_url_the_user_lands_on():
    clean, ticket = without_ticket(f"/p?q=1&{TICKET_PARAM}=T0K")
    assert (clean, ticket) == ("/p?q=1", "T0K")
    assert without_ticket("/") == ("/", None)


DOMAIN = "preview.example.com"


@pytest.mark.parametrize(
    "target",
    [
        "https://a.preview.example.com/",
        "https://a.preview.example.com/x/y?z=1",
        "http://pr-12-abc.preview.example.com/",
    ],
)
def test_a_preview_address_is_accepted_as_given(target):
    assert preview_url(target, DOMAIN, schemes=("http", "https")) == target


def test_by_default_only_https_carries_the_ticket_back():
    assert preview_url("https://a.preview.example.com/x", DOMAIN) == "https://a.preview.example.com/x"
    assert preview_url("http://a.preview.example.com/x", DOMAIN) is None


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.test/",
        "https://evil.localhost\\.a.preview.example.com/",  # a browser goes to evil.localhost
        "https://evil\\@a.preview.example.com/",
        "https://user@a.preview.example.com/",
        "https://a.preview.example.com:8443/",  # another port
        "https://a.b.preview.example.com/",  # not one preview's host
        "https://preview.example.com/",
        "https://a.preview.example.com\t/",
        "javascript://a.preview.example.com/%0aalert(1)",
        "//a.preview.example.com/",
        "",
    ],
)
def test_anything_a_browser_could_read_as_another_host_is_refused(target):
    assert preview_url(target, DOMAIN) is None


def test_the_previews_port_is_the_only_one_accepted():
    plain = ("http", "https")
    assert (
        preview_url("http://a.preview.example.com:8080/x", DOMAIN, 8080, plain) == "http://a.preview.example.com:8080/x"
    )
    assert preview_url("http://a.preview.example.com/x", DOMAIN, 8080, plain) is None


@pytest.mark.parametrize("target", ["/", "/p/12", "/?state=ready&q=x"])
def test_a_local_path_is_kept(target):
    assert local_path(target) == target


@pytest.mark.parametrize("target", ["//evil.test/", "/\\evil.test/", "/\t/evil.test", "https://evil.test/", "p/12", ""])
def test_a_path_a_browser_reads_as_another_site_is_refused(target):
    assert local_path(target) is None
