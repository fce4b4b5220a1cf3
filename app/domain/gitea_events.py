"""Gitea webhook payloads as typed events, parsed at the boundary.

Only the fields the service acts on are read. A missing or mistyped field
raises `PayloadError` naming its path, e.g. `pull_request.head.sha`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
BRANCH_REF_PREFIX = "refs/heads/"

# X-Gitea-Event-Type values that belong to the pull_request group.
PULL_REQUEST_EVENT_TYPES = frozenset(
    {
        "pull_request",
        "pull_request_sync",
        "pull_request_label",
        "pull_request_assign",
        "pull_request_milestone",
        "pull_request_review_approved",
        "pull_request_review_rejected",
        "pull_request_review_comment",
        "pull_request_review_request",
    }
)


class PayloadError(ValueError):
    """The payload lacks a field we need, or has it in the wrong shape."""


@dataclass(frozen=True)
class RepositoryRef:
    full_name: str
    clone_url: str
    private: bool


@dataclass(frozen=True)
class PushEvent:
    repository: RepositoryRef
    ref: str
    before: str
    after: str
    sender: str | None = None  # who pushed

    @property
    def branch(self) -> str | None:
        return self.ref[len(BRANCH_REF_PREFIX) :] if self.ref.startswith(BRANCH_REF_PREFIX) else None

    @property
    def deletes_branch(self) -> bool:
        return set(self.after) == {"0"}

    @property
    def creates_branch(self) -> bool:
        return set(self.before) == {"0"}


@dataclass(frozen=True)
class PullRequestEvent:
    repository: RepositoryRef
    event_type: str
    action: str
    number: int
    state: str
    merged: bool
    draft: bool
    head_ref: str
    head_sha: str
    head_repository: str | None
    base_ref: str
    labels: tuple[str, ...] = ()
    sender: str | None = None  # who did this: for a label event, who changed the labels

    @property
    def from_fork(self) -> bool:
        return self.head_repository is not None and self.head_repository != self.repository.full_name


@dataclass(frozen=True)
class DeleteEvent:
    """Gitea sends `delete` (not a push with a zero `after`) when a branch or tag is deleted."""

    repository: RepositoryRef
    ref: str  # the short name: `task/x`, not `refs/heads/task/x`
    ref_type: str  # branch | tag

    @property
    def branch(self) -> str | None:
        return self.ref if self.ref_type == "branch" else None


@dataclass(frozen=True)
class CommentEvent:
    """A comment on a pull request (`X-Gitea-Event-Type: pull_request_comment`)."""

    repository: RepositoryRef
    action: str  # created, edited, deleted
    number: int
    body: str
    author: str
    head_sha: str | None  # the PR's head when the comment was made


GiteaEvent = PushEvent | PullRequestEvent | DeleteEvent | CommentEvent


def _get(payload: Any, path: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
    value = payload
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value or value[part] is None:
            if required:
                raise PayloadError(f"missing field {path}")
            return None
        value = value[part]
    # bool is an int subclass: do not let true pass for a number.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PayloadError(f"field {path} has the wrong type")
    return value


def _sha(payload: Any, path: str) -> str:
    value = _get(payload, path, str)
    if not _SHA.fullmatch(value):
        raise PayloadError(f"field {path} is not a full commit sha")
    return value


def _repository(payload: dict[str, Any]) -> RepositoryRef:
    full_name = _get(payload, "repository.full_name", str)
    if full_name.count("/") != 1:
        raise PayloadError("field repository.full_name is not owner/name")
    return RepositoryRef(
        full_name=full_name,
        clone_url=_get(payload, "repository.clone_url", str),
        private=bool(_get(payload, "repository.private", bool, required=False)),
    )


def parse_push(payload: dict[str, Any]) -> PushEvent:
    return PushEvent(
        repository=_repository(payload),
        ref=_get(payload, "ref", str),
        before=_sha(payload, "before"),
        after=_sha(payload, "after"),
        sender=_get(payload, "sender.login", str, required=False),
    )


def parse_pull_request(event_type: str, payload: dict[str, Any]) -> PullRequestEvent:
    return PullRequestEvent(
        repository=_repository(payload),
        event_type=event_type,
        action=_get(payload, "action", str),
        number=_get(payload, "number", int),
        state=_get(payload, "pull_request.state", str),
        merged=bool(_get(payload, "pull_request.merged", bool, required=False)),
        draft=bool(_get(payload, "pull_request.draft", bool, required=False)),
        head_ref=_get(payload, "pull_request.head.ref", str),
        head_sha=_sha(payload, "pull_request.head.sha"),
        head_repository=_get(payload, "pull_request.head.repo.full_name", str, required=False),
        base_ref=_get(payload, "pull_request.base.ref", str),
        labels=tuple(
            str(label.get("name"))
            for label in (_get(payload, "pull_request.labels", list, required=False) or [])
            if isinstance(label, dict) and label.get("name")
        ),
        sender=_get(payload, "sender.login", str, required=False),
    )


def parse_comment(payload: dict[str, Any]) -> CommentEvent | None:
    """The comment on a pull request; None for a comment on an issue."""
    on_pull = _get(payload, "is_pull", bool, required=False) or _get(payload, "pull_request", dict, required=False)
    if not on_pull:
        return None
    head_sha = _get(payload, "pull_request.head.sha", str, required=False)
    return CommentEvent(
        repository=_repository(payload),
        action=_get(payload, "action", str),
        number=_get(payload, "issue.number", int),
        body=_get(payload, "comment.body", str, required=False) or "",
        author=_get(payload, "comment.user.login", str),
        head_sha=head_sha if head_sha and _SHA.fullmatch(head_sha) else None,
    )


def parse_delete(payload: dict[str, Any]) -> DeleteEvent:
    ref = _get(payload, "ref", str)
    return DeleteEvent(
        repository=_repository(payload),
        ref=ref[len(BRANCH_REF_PREFIX) :] if ref.startswith(BRANCH_REF_PREFIX) else ref,
        ref_type=_get(payload, "ref_type", str),
    )


def parse_event(event_type: str, payload: Any) -> GiteaEvent | None:
    """The typed event for a delivery, or None for event types we do not act on."""
    if not isinstance(payload, dict):
        raise PayloadError("the body is not a JSON object")
    if event_type == "push":
        return parse_push(payload)
    if event_type in PULL_REQUEST_EVENT_TYPES:
        return parse_pull_request(event_type, payload)
    if event_type == "delete":
        return parse_delete(payload)
    if event_type in ("pull_request_comment", "issue_comment"):
        return parse_comment(payload)
    return None
