"""Who may wake a sleeping preview: a person's browser with the preview's credentials."""

import base64

import pytest

from app.domain import visitors

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
)


@pytest.mark.parametrize(
    "agent",
    [
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "TelegramBot (like TwitterBot)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) SkypeUriPreview Preview/0.5",
        "WhatsApp/2.23.20.0",
        "",
        None,
    ],
)
def test_link_preview_bots_and_silent_clients_do_not_wake(agent):
    assert visitors.is_bot(agent)
    assert not visitors.may_wake("GET", agent, None)


def test_a_browser_get_wakes_but_a_head_or_a_prefetch_does_not():
    assert visitors.may_wake("GET", BROWSER, None)
    assert visitors.may_wake("POST", BROWSER, None)
    assert not visitors.may_wake("HEAD", BROWSER, None)
    assert not visitors.may_wake("OPTIONS", BROWSER, None)
    assert not visitors.may_wake("GET", BROWSER, "prefetch;prerender")


def basic(text: bytes) -> str:
    return "Basic " + base64.b64encode(text).decode()


def test_basic_credentials_are_read_and_compared():
    assert visitors.basic_credentials(basic(b"preview:s3cret:with:colons")) == ("preview", "s3cret:with:colons")
    for header in (None, "", "Bearer abc", "Basic", "Basic !!!", basic(b"no-colon"), basic(b"\xff\xfe:x")):
        assert visitors.basic_credentials(header) is None
    given = visitors.basic_credentials(basic(b"preview:right"))
    assert visitors.credentials_match(given, "preview", "right")
    assert not visitors.credentials_match(given, "preview", "wrong")
    assert not visitors.credentials_match(given, "admin", "right")
    assert not visitors.credentials_match(given, "preview", "")
    assert not visitors.credentials_match(None, "preview", "right")


def test_only_a_preview_host_gets_the_wake_page_and_only_while_previews_may_sleep():
    from app.settings import Settings
    from app.usecases.access.wake_visits import preview_slug

    on = Settings(
        preview_domain="preview.example.com",
        public_url="https://previews.example.com",
        traffic_metrics_url="http://traefik:8082/metrics",
        wake_endpoint=("10.96.0.20", 8000),
    )
    assert preview_slug(on, "acme-shop-pr-12.preview.example.com") == "acme-shop-pr-12"
    assert preview_slug(on, "Acme-Shop-PR-12.Preview.Example.com:443") == "acme-shop-pr-12"
    for host in ("previews.example.com", "preview.example.com", "a.b.preview.example.com", "evil.com", "localhost"):
        assert preview_slug(on, host) is None, host
    assert preview_slug(on.replace(wake_endpoint=None), "acme-shop-pr-12.preview.example.com") is None
    assert preview_slug(on.replace(access="gitea"), "acme-shop-pr-12.preview.example.com") is None
