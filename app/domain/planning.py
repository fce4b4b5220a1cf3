"""What a Gitea event asks of us: deploy a preview at a sha, tear one down, or nothing.

Pure functions: the caller looks up what the database knows (is there an open
PR for this branch?) and passes it in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from app.domain.gitea_events import CommentEvent, DeleteEvent, GiteaEvent, PullRequestEvent, PushEvent
from app.settings import Settings

DEPLOY = "deploy"
TEARDOWN = "teardown"
APPROVE = "approve"  # a maintainer approves an untrusted PR's commit for building
LABELS = "labels"  # a PR's labels changed: the worker reads them from Gitea (the pin)

APPROVAL_LABEL = "preview:approved"
APPROVAL_COMMAND = "/preview"

PR_DEPLOY_ACTIONS = frozenset({"opened", "reopened", "synchronized"})
PR_TEARDOWN_ACTIONS = frozenset({"closed"})


@dataclass(frozen=True)
class Plan:
    intent: str | None
    reason: str
    target_key: str | None = None
    branch: str | None = None
    pr_number: int | None = None
    head_sha: str | None = None
    action: str | None = None
    # Who asked: a deploy's pusher or PR sender (the dashboard's "mine"), an approval's approver.
    actor: str | None = None
    from_fork: bool = False

    @property
    def work_key(self) -> str | None:
        """Identity of the work: the same repository, PR or branch, head sha and action."""
        if self.intent is None:
            return None
        raw = "\n".join(str(part) for part in (self.target_key, self.intent, self.head_sha, self.action))
        return hashlib.sha256(raw.encode()).hexdigest()[:32]


def ignore(reason: str) -> Plan:
    return Plan(intent=None, reason=reason)


def plan_approval(event: PullRequestEvent | CommentEvent) -> Plan:
    """A maintainer's approval: the `preview:approved` label on the PR, or a `/preview` comment.

    It names the PR's head when it was given; the worker confirms with Gitea that
    this is still the head and that the approver may write, before building.
    """
    if isinstance(event, CommentEvent):
        first_line = event.body.strip().splitlines()[0].strip() if event.body.strip() else ""
        if event.action != "created" or first_line != APPROVAL_COMMAND:
            return ignore("the comment asks nothing of the preview")
        actor: str | None = event.author
        how = f"{APPROVAL_COMMAND} comment"
    else:
        actor, how = event.sender, f"{APPROVAL_LABEL} label"
    return Plan(
        intent=APPROVE,
        reason=f"approved with the {how} by {actor}",
        target_key=f"{event.repository.full_name}#{event.number}",
        pr_number=event.number,
        head_sha=event.head_sha,
        action="approve",
        actor=actor,
    )


def plan_pull_request(event: PullRequestEvent) -> Plan:
    if event.event_type == "pull_request_label" and event.action == "label_updated" and APPROVAL_LABEL in event.labels:
        return plan_approval(event)
    if event.event_type == "pull_request_label":
        return Plan(
            intent=LABELS,
            reason="labels changed",
            target_key=f"{event.repository.full_name}#{event.number}",
            pr_number=event.number,
            action=event.action,
        )
    if event.action in PR_DEPLOY_ACTIONS:
        intent, reason = DEPLOY, f"pull request {event.action}"
    elif event.action in PR_TEARDOWN_ACTIONS:
        intent, reason = TEARDOWN, f"pull request {'merged' if event.merged else 'closed'}"
    else:
        return ignore(f"pull request action {event.action!r} does not change the preview")
    return Plan(
        intent=intent,
        reason=reason,
        target_key=f"{event.repository.full_name}#{event.number}",
        branch=event.head_ref,
        pr_number=event.number,
        head_sha=event.head_sha,
        action=event.action,
        actor=event.sender if intent == DEPLOY else None,
        from_fork=event.from_fork,
    )


def plan_push(event: PushEvent, settings: Settings, open_pr_number: int | None) -> Plan:
    branch = event.branch
    if branch is None:
        return ignore(f"{event.ref} is not a branch")
    if not settings.is_task_branch(branch):
        return ignore(f"branch {branch!r} matches no task-branch pattern")
    target = f"{event.repository.full_name}@{branch}"
    if event.deletes_branch:
        return Plan(
            intent=TEARDOWN,
            reason="task branch deleted",
            target_key=target,
            branch=branch,
            head_sha=event.before,
            action="delete",
        )
    if open_pr_number is not None:
        return ignore(f"branch {branch!r} has open pull request #{open_pr_number}, whose sync event covers this push")
    return Plan(
        intent=DEPLOY,
        reason="task branch pushed",
        target_key=target,
        branch=branch,
        head_sha=event.after,
        action="push",
        actor=event.sender,
    )


def plan_delete(event: DeleteEvent, settings: Settings) -> Plan:
    branch = event.branch
    if branch is None:
        return ignore(f"deleted {event.ref_type} {event.ref!r} is not a branch")
    if not settings.is_task_branch(branch):
        return ignore(f"branch {branch!r} matches no task-branch pattern")
    return Plan(
        intent=TEARDOWN,
        reason="task branch deleted",
        target_key=f"{event.repository.full_name}@{branch}",
        branch=branch,
        action="delete",
    )


def plan(event: GiteaEvent, settings: Settings, open_pr_number: int | None = None) -> Plan:
    if isinstance(event, PullRequestEvent):
        return plan_pull_request(event)
    if isinstance(event, CommentEvent):
        return plan_approval(event)
    if isinstance(event, DeleteEvent):
        return plan_delete(event, settings)
    return plan_push(event, settings, open_pr_number)
