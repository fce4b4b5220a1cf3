"""The desired state a planned delivery (or a request from the API) writes: the commit a
preview should run, or that it should go. The worker reconciles the cluster with it."""

from __future__ import annotations

from app.db import utcnow
from app.domain.gitea_events import RepositoryRef
from app.domain.planning import Plan
from app.domain.states import PreviewState
from app.models import Event, Preview, Repository


def want_deploy(ref: RepositoryRef, wanted: Plan) -> Preview:
    """Record that `wanted.target_key` should run `wanted.head_sha`: the desired state the worker reconciles.

    Written with single-row updates of the desired fields only, never a save of a
    copy, so it cannot undo a worker's change and a worker cannot undo it.
    """
    repository = Repository.upsert(ref.full_name, ref.clone_url, ref.private)
    assert wanted.target_key
    assert wanted.head_sha
    assert wanted.branch
    now = utcnow()
    # Two deliveries for a new target at once: one inserts, both then update.
    Preview.insert(
        repository=repository,
        target_key=wanted.target_key,
        pr_number=wanted.pr_number,
        branch=wanted.branch,
        head_sha=wanted.head_sha,
        from_fork=wanted.from_fork,
        names_key=wanted.target_key,
        state=PreviewState.QUEUED,
        created_at=now,
        updated_at=now,
    ).on_conflict_ignore().execute()
    # A new deploy gets its own expiry when it takes its slot: an old one (past, after a TTL
    # teardown) must not expire it while it waits for a worker.
    desired = {
        "branch": wanted.branch,
        "head_sha": wanted.head_sha,
        "state": PreviewState.QUEUED,
        "updated_at": now,
        "expires_at": None,
    }
    if wanted.pr_number is not None:
        desired["from_fork"] = wanted.from_fork
    Preview.update(**desired).where(Preview.target_key == wanted.target_key).execute()
    # Without a slot it is in line from now on (keeping its place if it was in line already).
    Preview.update(waiting_since=now).where(
        (Preview.target_key == wanted.target_key) & (Preview.holds_slot == False) & Preview.waiting_since.is_null()  # noqa: E712
    ).execute()
    preview: Preview = Preview.get(Preview.target_key == wanted.target_key)
    Event.record(preview, "queued", f"{wanted.reason} at {wanted.head_sha[:12]}", progress=0)
    return preview


def want_teardown(wanted: Plan, ask_gitea_first: bool) -> Preview | None:
    """The live preview a close or delete asks to tear down (None: nothing is live).

    With Gitea to ask, nothing is marked here: the worker asks Gitea first, so a replayed or
    late close of a PR that is open today touches nothing. Without, the payload is all there
    is, and the preview is marked for teardown at once."""
    assert wanted.target_key
    now = utcnow()
    if ask_gitea_first:
        found: Preview | None = Preview.get_or_none(
            (Preview.target_key == wanted.target_key) & Preview.state.not_in(PreviewState.GONE)
        )
        if found is not None:
            Event.record(found, "teardown", f"{wanted.reason}: asking Gitea before tearing down")
        return found
    asked = (
        Preview.update(state=PreviewState.DELETING, waiting_since=None, updated_at=now)
        .where((Preview.target_key == wanted.target_key) & Preview.state.not_in(PreviewState.GONE))
        .execute()
    )
    if not asked:
        return None
    preview: Preview = Preview.get(Preview.target_key == wanted.target_key)
    Event.record(preview, "teardown", f"{wanted.reason}: teardown requested")
    return preview
