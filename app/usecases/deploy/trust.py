"""Whose code gets built: untrusted pull requests wait for a maintainer's approval of each commit.

A PR is code from a stranger unless its author can write to the base
repository, or its head is a branch of the base repository at the PR's head
commit (pushing that branch took write access). Head repository == base
repository proves nothing: Gitea's AGit flow lets anyone who can read a
repository open a PR from it (`git push origin HEAD:refs/for/main`), with
`refs/pull/<n>/head` as its head. `UNTRUSTED_PRS` says what happens to the
strangers' PRs: `approve` (the default) builds a commit once a maintainer
approves it, `never` builds none, `build` builds all.

What the webhook says is only a hint: the PR's repositories and author, the
approver's access and the head being approved are confirmed with Gitea.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.domain.git_refs import branch_name_problem
from app.domain.planning import APPROVAL_COMMAND, APPROVAL_LABEL
from app.domain.states import PreviewState
from app.models import Event, Preview, WebhookDelivery
from app.usecases.deploy import lookahead
from app.usecases.deploy.lookahead import Lookahead
from app.usecases.ports import GiteaApi, Services

WRITERS = frozenset({"write", "admin", "owner"})


def _repo_id(side: Any) -> Any:
    side = side if isinstance(side, dict) else {}
    return side.get("repo_id") or (side.get("repo") or {}).get("id")


def read_ahead(services: Services, preview: Preview, sender: str | None) -> Lookahead | None:
    """Start the trust check's own reads while the job reads the PR, for the PR as its delivery
    describes it: its sender's access (for a PR opened or pushed to by its author, the author's)
    and its head branch's commit. untrusted_because uses them only where the PR confirms them."""
    gitea, repository = services.gitea, preview.repository.full_name
    if preview.pr_number is None or services.settings.untrusted_prs == "build" or not gitea.configured:
        return None
    if preview.approved_sha is not None and preview.approved_sha == preview.head_sha:
        return None  # approved: no trust check to come
    reads: list[lookahead.Read] = []
    if sender:
        reads.append((gitea.permission, (repository, sender)))
    if _may_be_a_branch(preview.branch or ""):
        reads.append((gitea.branch_head, (repository, preview.branch)))
    return Lookahead(reads)


def expected_to_build(services: Services, preview: Preview, sender: str | None, early: Lookahead | None) -> bool:
    """A guess at untrusted_because's answer before the PR is read, for work that holds nothing
    of the PR and may start early: True when the commit is approved or the check does not
    apply, or read_ahead's reads show a writer behind the delivery (its sender can write, or
    a branch of the repository stands at the commit). Never the check itself: a stranger's
    PR just gets no head start."""
    if preview.pr_number is None or services.settings.untrusted_prs == "build":
        return True
    if preview.approved_sha is not None and preview.approved_sha == preview.head_sha:
        return True
    gitea, repository, branch = services.gitea, preview.repository.full_name, preview.branch or ""
    if not gitea.configured:
        return not preview.from_fork
    if early is None:
        return False
    if sender and early.peek(gitea.permission, repository, sender) in WRITERS:
        return True
    return _may_be_a_branch(branch) and early.peek(gitea.branch_head, repository, branch) == preview.head_sha


def _may_be_a_branch(ref: str) -> bool:
    return bool(ref) and not ref.startswith("refs/") and branch_name_problem(ref) is None


def untrusted_because(
    services: Services, preview: Preview, pull: dict[str, Any] | None = None, early: Lookahead | None = None
) -> str | None:
    """Why the preview's code may not be built without approval; None when it may. `pull`:
    the PR as Gitea answered it earlier in the same job (else it is read here); `early`: the
    reads read_ahead started beside it.

    A GiteaError propagates: the job is retried rather than guessing either way.
    """
    if preview.pr_number is None or services.settings.untrusted_prs == "build":
        return None
    gitea, repository = services.gitea, preview.repository.full_name
    if not gitea.configured:  # nothing to ask: the payload's word, which only ever makes it stricter
        return "it comes from a fork" if preview.from_fork else None
    if pull is None:
        pull = gitea.pull_request(repository, preview.pr_number)
    if pull is None:
        return "Gitea does not know this pull request"
    ask = early.ask if early is not None else lookahead.now
    head, base = pull.get("head") or {}, pull.get("base") or {}
    author = str((pull.get("user") or {}).get("login") or "")
    access = ask(gitea.permission, repository, author) if author else "none"
    if access in WRITERS:
        return None  # a maintainer's own branch or fork
    same_repository = _repo_id(head) is not None and _repo_id(head) == _repo_id(base)
    if same_repository and _pushed_by_a_writer(gitea, repository, head, ask):
        return None
    source = "an AGit push" if same_repository else f"{(head.get('repo') or {}).get('full_name') or 'a deleted fork'}"
    if access is None:
        return f"it comes from {source}, and this service may not ask Gitea whether {author} can write here"
    return f"it comes from {source} by {author}, who cannot write to {repository}"


def _pushed_by_a_writer(
    gitea: GiteaApi, repository: str, head: dict[str, Any], ask: Callable[..., Any] = lookahead.now
) -> bool:
    """Whether the PR's head is a branch of the base repository standing at the PR's head
    commit: only a writer can push a branch. An AGit PR's head is `refs/pull/<n>/head`."""
    ref, sha = str(head.get("ref") or ""), str(head.get("sha") or "")
    if not sha or not _may_be_a_branch(ref):
        return False
    return bool(ask(gitea.branch_head, repository, ref) == sha)


def approval_hint(services: Services, why: str) -> str:
    if services.settings.untrusted_prs == "never":
        return f"not built: {why}; this service does not build such pull requests"
    return (
        f"not built: {why}; someone who can write to the repository approves this commit"
        f" with the label {APPROVAL_LABEL} or a comment {APPROVAL_COMMAND}"
    )


def forget_stale_label(services: Services, preview: Preview, sha: str) -> None:
    """At a new head, before anything else: take off the label that approved an earlier commit,
    so that only adding it again approves this one. A GiteaError propagates: the job is retried
    rather than going on while the old approval still shows."""
    if not services.gitea.configured or preview.pr_number is None or preview.approved_sha in (None, sha):
        return
    services.gitea.remove_label(preview.repository.full_name, preview.pr_number, APPROVAL_LABEL)
    Preview.update(approval_label_on=False).where(Preview.id == preview.id).execute()


def labels_read(preview: Preview, labels: set[str]) -> None:
    """Gitea's labels of the PR, read for another reason: when the approval label is not among
    them, the next label event that carries it is new. (Only that way round: a read that finds it
    must not make the event that added it look old.)"""
    if APPROVAL_LABEL not in labels:
        Preview.update(approval_label_on=False).where(
            (Preview.id == preview.id) & (Preview.approval_label_on == True)  # noqa: E712
        ).execute()


def _newly_labelled(preview: Preview) -> bool:
    """Compare-and-set: True for the first label event that finds the approval label on the PR."""
    newly = Preview.update(approval_label_on=True).where(
        (Preview.id == preview.id) & (Preview.approval_label_on == False)  # noqa: E712
    )
    return bool(newly.execute())


def approve(services: Services, delivery: WebhookDelivery) -> str:
    """Record a maintainer's approval of the PR's head commit, once Gitea confirms it.

    Returns approved (a deploy should run), stale (the PR moved on since), or refused.
    """
    preview, sha, actor = delivery.preview, delivery.head_sha, delivery.actor or ""
    gitea = services.gitea
    if services.settings.untrusted_prs != "approve" or not gitea.configured:
        Event.record(preview, "approval", f"approval by {actor} ignored: UNTRUSTED_PRS is not approve")
        return "refused"
    repository = preview.repository.full_name
    pull = gitea.pull_request(repository, preview.pr_number) if preview.pr_number is not None else None
    head = str(((pull or {}).get("head") or {}).get("sha") or "")
    if not sha or head != sha or preview.head_sha != sha or (pull or {}).get("state") != "open":
        Event.record(preview, "approval", f"approval by {actor} ignored: it was given for another commit")
        return "stale"
    access = gitea.permission(repository, actor) if actor else "none"
    # Only writers can change a PR's labels, so a label that Gitea shows on the PR is a writer's word.
    labels = {str(label.get("name")) for label in (pull or {}).get("labels") or [] if isinstance(label, dict)}
    label_by_writer = access is None and delivery.event_type == "pull_request_label" and APPROVAL_LABEL in labels
    if access not in WRITERS and not label_by_writer:
        Event.record(preview, "approval", f"approval by {actor} ignored: they cannot write to {repository}")
        return "refused"
    if delivery.event_type == "pull_request_label" and not _newly_labelled(preview):
        Event.record(preview, "approval", f"label change by {actor} ignored: {APPROVAL_LABEL} was on the PR already")
        return "stale"
    approved = {"approved_sha": sha, "approved_by": actor}
    waiting = (PreviewState.PENDING_APPROVAL,)
    if Preview.change(preview.id, sha=sha, states=waiting, state=PreviewState.QUEUED, **approved):
        Event.record(preview, "approval", f"{sha[:12]} approved by {actor}")
        return "approved"
    if Preview.change(preview.id, sha=sha, states=PreviewState.DEPLOYING_STATES, **approved):
        Event.record(preview, "approval", f"{sha[:12]} approved by {actor} (its deploy is under way)")
        return "approved"
    return "stale"
