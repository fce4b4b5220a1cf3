"""Links to Gitea's web pages, built from `GITEA_URL` and names we validated.

Never from a payload's `html_url`: a signed delivery can still say anything there
(`javascript:...`), and a page that renders it as a link runs it.
"""

from __future__ import annotations

from urllib.parse import quote


def repository_url(gitea_url: str | None, full_name: str) -> str | None:
    if not gitea_url:
        return None
    return f"{gitea_url.rstrip('/')}/{quote(full_name, safe='/')}"


def pull_request_url(gitea_url: str | None, full_name: str, number: int | None) -> str | None:
    web = repository_url(gitea_url, full_name)
    return f"{web}/pulls/{int(number)}" if web and number is not None else None


def branch_url(gitea_url: str | None, full_name: str, branch: str) -> str | None:
    web = repository_url(gitea_url, full_name)
    return f"{web}/src/branch/{quote(branch, safe='/')}" if web else None


def commit_url(gitea_url: str | None, full_name: str, sha: str) -> str | None:
    web = repository_url(gitea_url, full_name)
    return f"{web}/commit/{quote(sha, safe='')}" if web else None
