"""Registered repositories: each gets its own webhook secret and a webhook made through Gitea's API.

A delivery naming a registered repository is verified with that repository's
secret only, so a repository admin who knows their own secret cannot speak for
another repository. The service's token needs admin access to the repository
to manage its hooks (and to ask who may write, see app/usecases/deploy/trust.py).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from app.models import Repository
from app.settings import Settings
from app.usecases.ports import GiteaApi

log = logging.getLogger(__name__)

# What a preview needs to hear about; "pull_request" includes its sync, label and comment events.
HOOK_EVENTS = ["push", "delete", "pull_request"]


class RegistrationError(Exception):
    """The repository cannot be registered (or changed); the message says why."""


@dataclass(frozen=True)
class Registered:
    full_name: str
    hook_id: int | None
    created: bool


def hook_url(settings: Settings) -> str:
    return f"{settings.public_url.rstrip('/')}/webhooks/gitea"


def _new_secret() -> str:
    return secrets.token_hex(24)


def _ours(gitea: GiteaApi, full_name: str, url: str) -> int | None:
    """The id of a hook of the repository that already calls us (from an earlier install)."""
    for hook in gitea.hooks(full_name):
        if (hook.get("config") or {}).get("url") == url:
            return int(hook["id"])
    return None


def register(gitea: GiteaApi, settings: Settings, full_name: str) -> Registered:
    """Record the repository with a new secret and point its Gitea webhook at us, with that secret."""
    found = gitea.repository(full_name)
    if found is None:
        raise RegistrationError(f"Gitea has no repository {full_name!r}, or the service's token cannot see it")
    canonical = str(found.get("full_name") or full_name)
    url = hook_url(settings)
    secret = _new_secret()
    hook_id = gitea.save_hook(canonical, url, secret, HOOK_EVENTS, _ours(gitea, canonical, url))
    repository = Repository.named(canonical)
    created = repository is None
    if repository is None:
        repository = Repository.create(
            full_name=canonical,
            clone_url=str(found.get("clone_url") or ""),
            private=bool(found.get("private")),
        )
    Repository.update(webhook_secret=secret, hook_id=hook_id).where(Repository.id == repository.id).execute()
    _learn_id(repository, found.get("id"))
    return Registered(canonical, hook_id, created)


def rotate_secret(gitea: GiteaApi, settings: Settings, full_name: str) -> Registered:
    """A new secret, in the database and in the Gitea hook."""
    repository = Repository.named(full_name)
    if repository is None or repository.webhook_secret is None:
        raise RegistrationError(f"{full_name} is not registered: `flask repos add {full_name}` first")
    return register(gitea, settings, repository.full_name)


def remove(gitea: GiteaApi, full_name: str) -> None:
    """Unregister: delete our hook in Gitea and forget the secret (its previews are left to their TTL)."""
    repository = Repository.named(full_name)
    if repository is None or repository.webhook_secret is None:
        raise RegistrationError(f"{full_name} is not registered")
    if gitea.configured and repository.hook_id is not None:
        gitea.delete_hook(repository.full_name, repository.hook_id)
    Repository.update(webhook_secret=None, hook_id=None).where(Repository.id == repository.id).execute()


def _learn_id(repository: Repository, gitea_id: object) -> None:
    """Record Gitea's id for the row, unless another row holds it already (an older release may
    have stored one repository twice, in two letter cases: the first row keeps it)."""
    if not isinstance(gitea_id, int) or Repository.select().where(Repository.gitea_id == gitea_id).exists():
        return
    Repository.update(gitea_id=gitea_id).where(Repository.id == repository.id).execute()


def follow_gitea(gitea: GiteaApi, repository: Repository) -> str | None:
    """Bring the row in line with what Gitea says of the repository, by Gitea's id (learnt from
    Gitea by name the first time): 'renamed' when it has a new name now (the row, its previews
    and deliveries follow), 'deleted' when Gitea no longer has it, else None. Only Gitea's word
    renames a registration: a delivery's payload is not enough. GiteaError propagates."""
    if repository.gitea_id is None:
        found = gitea.repository(repository.full_name)
        if found is not None:
            _learn_id(repository, found.get("id"))
    else:
        found = gitea.repository_by_id(repository.gitea_id)
    if found is None:
        return "deleted"
    name = str(found.get("full_name") or repository.full_name)
    if name.lower() == repository.full_name.lower():
        return None
    taken = Repository.named(name)
    if taken is not None and taken.id != repository.id:
        log.warning(
            "repository renamed to a name another row holds: not followed old=%s new=%s", repository.full_name, name
        )
        return None
    log.info("repository renamed in Gitea old=%s new=%s", repository.full_name, name)
    repository.rename(name, str(found.get("clone_url") or repository.clone_url))
    return "renamed"


def registered() -> list[Repository]:
    return list(Repository.select().where(Repository.webhook_secret.is_null(False)).order_by(Repository.full_name))


# --- the sender of a webhook delivery ------------------------------------------------------


def for_delivery(name: str | None, gitea_id: int | None) -> Repository | None:
    """The registered repository a delivery claims to be about: by name; else by Gitea's id
    (learnt from Gitea), for a repository renamed since."""
    repository = Repository.named(name) if name else None
    if repository is None and gitea_id is not None:
        repository = Repository.get_or_none(Repository.gitea_id == gitea_id)
    return repository


def signing_secret(settings: Settings, repository: Repository | None) -> str | None:
    """The secret that must have signed the delivery: a registered repository's own; else the
    single GITEA_WEBHOOK_SECRET, when it is set."""
    if repository is not None and repository.webhook_secret:
        return str(repository.webhook_secret)
    return settings.gitea_webhook_secret
