"""Headless Chromium (Debian's, driven by playwright: no browser download) and Gitea's sign-in pages."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"


def sign_in_through_gitea(page, login: str, password: str) -> None:
    """On Gitea's pages: the sign-in form, then (first time) the grant of our application."""
    page.wait_for_selector("#user_name")
    page.fill("#user_name", login)
    page.fill("#password", password)
    page.press("#password", "Enter")
    page.wait_for_load_state()
    if page.locator("#authorize-app").count():
        page.click("#authorize-app")
    page.wait_for_load_state()
