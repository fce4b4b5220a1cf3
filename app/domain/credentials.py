"""Basic-auth credentials for a preview: a random password and its apr1 htpasswd line."""

from __future__ import annotations

import base64
import hashlib
import secrets

from passlib.hash import apr_md5_crypt

USERNAME = "preview"


def new_password() -> str:
    return secrets.token_urlsafe(18)


def htpasswd_line(username: str, password: str, scheme: str = "apr1") -> str:
    """One htpasswd line: `apr1` (`$apr1$`, what nginx and Traefik read; bcrypt fails on glibc
    controller images), or `sha` (`{SHA}`, unsalted SHA-1: the only one Envoy Gateway reads;
    our passwords are 144 random bits, so no dictionary reaches them)."""
    if scheme == "sha":
        digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
        return f"{username}:{{SHA}}{digest}"
    if scheme != "apr1":
        raise ValueError(f"unknown htpasswd scheme {scheme!r}")
    return f"{username}:{apr_md5_crypt.hash(password)}"
