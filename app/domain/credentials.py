"""Basic-auth credentials for a preview: a random password and its apr1 htpasswd line."""

from __future__ import annotations

import secrets

from passlib.hash import apr_md5_crypt

USERNAME = "preview"


def new_password() -> str:
    return secrets.token_urlsafe(18)


def htpasswd_line(username: str, password: str) -> str:
    """One auth-file line nginx understands natively (`$apr1$`; bcrypt fails on glibc controller images)."""
    return f"{username}:{apr_md5_crypt.hash(password)}"
