"""What the forward-auth endpoint understands of each proxy's question (pure parsing);
the sign-in itself is tested end to end in test_preview_signin.py."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import Headers

from app.usecases.preview_access import TICKET_PARAM, original_request, without_ticket


@pytest.mark.parametrize(
    ("headers", "rest", "url"),
    [
        # nginx auth_request / ingress-nginx auth-url
        ({"X-Original-URL": "https://a.preview.example.com/x?y=1"}, "", "https://a.preview.example.com/x?y=1"),
        # Traefik ForwardAuth
        (
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "a.preview.example.com", "X-Forwarded-Uri": "/x?y=1"},
            "",
            "https://a.preview.example.com/x?y=1",
        ),
        # Envoy extAuth: the original Host, its path appended to ours
        ({"Host": "a.preview.example.com", "X-Forwarded-Proto": "https"}, "x", "https://a.preview.example.com/x"),
    ],
)
def test_the_original_request_from_each_proxy(headers, rest, url):
    original = original_request(Headers(headers), rest)
    assert original is not None
    assert (original.url, original.host, original.secure) == (url, "a.preview.example.com", True)


def test_a_question_without_a_request_is_refused():
    assert original_request(Headers({}), "") is None
    assert original_request(Headers({"X-Original-URL": "javascript:alert(1)"}), "") is None


def test_the_ticket_is_taken_out_of_the_url_the_user_lands_on():
    clean, ticket = without_ticket(f"https://a.preview.example.com/p?q=1&{TICKET_PARAM}=T0K")
    assert (clean, ticket) == ("https://a.preview.example.com/p?q=1", "T0K")
    assert without_ticket("https://a.preview.example.com/") == ("https://a.preview.example.com/", None)
