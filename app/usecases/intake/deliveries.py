"""Use case run by the worker for one received delivery: plan it, then carry it out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import peewee

from app.db import database, utcnow
from app.domain.planning import APPROVE, DEPLOY, LABELS, TEARDOWN
from app.domain.states import DeliveryOutcome, PreviewState
from app.models import Event, Preview, WebhookDelivery
from app.usecases import jobs
from app.usecases.deploy import lease, pipeline, preview_config, teardown, trust
from app.usecases.deploy.isolating import IsolationAhead
from app.usecases.deploy.lookahead import Lookahead
from app.usecases.intake import triage
from app.usecases.ports import GiteaError, Services

log = logging.getLogger(__name__)


def _newer_deliveries(delivery: WebhookDelivery) -> peewee.SelectQuery:
    return WebhookDelivery.select().where(
        (WebhookDelivery.target_key == delivery.target_key)
        & (WebhookDelivery.outcome == DeliveryOutcome.ACCEPTED)
        & (WebhookDelivery.intent.in_((DEPLOY, TEARDOWN)))  # an approval changes no desired commit
        & (WebhookDelivery.id > delivery.id)
    )


def _newer_delivery_exists(delivery: WebhookDelivery) -> bool:
    return bool(_newer_deliveries(delivery).exists())


@dataclass(frozen=True)
class GiteaHead:
    """What Gitea says now: the commit (None: the PR is closed or the branch gone), and the
    PR as read (passed on, so the trust check does not read it again in the same job)."""

    sha: str | None
    pull: dict[str, Any] | None = None


def _head_now(services: Services, preview: Preview) -> GiteaHead:
    """The commit Gitea says the PR or branch is at now (following the PR's real labels for
    the pin on the way). GiteaError when Gitea cannot say."""
    repository = preview.repository.full_name
    if preview.pr_number is None:
        return GiteaHead(services.gitea.branch_head(repository, preview.branch))
    pull = services.gitea.pull_request(repository, preview.pr_number)
    if not pull or pull.get("state") != "open":
        return GiteaHead(None)
    labels = {str(label.get("name")) for label in pull.get("labels") or [] if isinstance(label, dict)}
    Preview.update(pinned=triage.PIN_LABEL in labels).where(
        (Preview.id == preview.id) & (Preview.pinned != (triage.PIN_LABEL in labels))
    ).execute()
    trust.labels_read(preview, labels)
    try:
        return GiteaHead(str(pull["head"]["sha"]), pull)
    except (KeyError, TypeError) as error:
        raise GiteaError(f"pull request {preview.target_key}: no head sha in Gitea's answer") from error


def _preview_file_read(services: Services, delivery: WebhookDelivery) -> preview_config.FileRead | None:
    """The preview file at the delivery's commit, read while Gitea is asked for the PR: the
    deploy uses it when Gitea confirms that commit (a moved head reads its own)."""
    if not services.gitea.configured:
        return None
    repository = delivery.preview.repository.full_name
    return preview_config.FileRead(services.gitea, services.settings, repository, str(delivery.head_sha))


def _confirmed_head(services: Services, delivery: WebhookDelivery) -> GiteaHead:
    """The commit to deploy: Gitea's head when it moved on since this delivery; no commit when
    Gitea says the PR is closed or the branch is gone (a payload's sha is never deployed then).

    Gitea may deliver the webhooks of quick successive pushes out of order, or a
    signed delivery may be replayed; the newest delivery is then an older commit.
    Following Gitea's answer makes the preview end at the real head whatever the order.
    """
    sha = str(delivery.head_sha)
    if not services.gitea.configured:
        return GiteaHead(sha)  # nobody to ask: the payload's word
    # A GiteaError propagates: the job is retried later; nothing is built on an unconfirmed claim.
    now = _head_now(services, delivery.preview)
    if now.sha is None or now.sha == sha:
        return now
    moved = Preview.change(delivery.preview_id, sha=sha, states=PreviewState.DEPLOYING_STATES, head_sha=now.sha)
    if moved:
        Event.record(delivery.preview, "queued", f"Gitea's head is {now.sha[:12]}, not {sha[:12]}: following it")
        return now
    return GiteaHead(sha, now.pull)


def _deploy(services: Services, delivery: WebhookDelivery) -> str:
    """Ask Gitea for the PR's head (and the preview file, and the trust check's reads, beside
    it), then deploy that head. Under the preview's lease from the start when it is free: the
    namespace and its guards are then applied while Gitea answers (pipeline.isolate_ahead).
    When another worker holds it, the deploy waits for it as usual (pipeline.deploy)."""
    early = _preview_file_read(services, delivery)
    trust_reads = trust.read_ahead(services, delivery.preview, delivery.actor)
    with lease.hold_if_free(delivery.preview_id, services.settings.lease_ttl) as held:
        if held is None:
            return _deploy_head(services, delivery, early, trust_reads)
        sha, sender = str(delivery.head_sha), delivery.actor
        ahead = pipeline.isolate_ahead(services, held, delivery.preview_id, sha, sender, trust_reads)
        try:
            return _deploy_head(services, delivery, early, trust_reads, held, ahead)
        finally:
            if ahead is not None:
                ahead.result()  # ended before the lease is let go


def _deploy_head(
    services: Services,
    delivery: WebhookDelivery,
    early: preview_config.FileRead | None,
    trust_reads: Lookahead | None,
    held: lease.Lease | None = None,
    ahead: IsolationAhead | None = None,
) -> str:
    head = _confirmed_head(services, delivery)
    if head.sha is None:
        if ahead is not None:
            ahead.result()  # all of it made before the teardown, which then removes it all
        return _not_wanted(services, delivery, held)
    return pipeline.deploy(
        services,
        delivery.preview_id,
        head.sha,
        pull=head.pull,
        preview_file=early,
        trust_reads=trust_reads,
        held=held,
        ahead=ahead,
    )


def _teardown(services: Services, delivery: WebhookDelivery) -> str:
    """A close or a branch delete: asked of Gitea first (when there is one to ask). Gitea says
    the PR is open or the branch exists after all (a replayed or late close or delete): 'stale',
    and the live preview is not touched. Else the preview is marked for teardown, unless it
    changed since it was read (a reopen came in), and torn down. A GiteaError propagates: the
    job is retried, and nothing was touched."""
    read = Preview.get_by_id(delivery.preview_id)
    if services.gitea.configured:
        head = _head_now(services, read).sha
        if head is not None:
            Event.record(read, "teardown", f"Gitea says it is still open at {head[:12]}: not torn down")
            return "stale"
    if read.state in PreviewState.ACTIVE:
        # In the same statement: no reopen or push came in while Gitea was asked (a deploy under
        # way is no reason to wait: the teardown wins over it, as it does at intake).
        not_since = ~peewee.fn.EXISTS(_newer_deliveries(delivery))
        marked = Preview.change(read.id, states=PreviewState.ACTIVE, also=not_since, state=PreviewState.DELETING)
        if not marked:
            return "superseded"
        Preview.update(waiting_since=None).where(Preview.id == read.id).execute()
    return teardown.teardown(services, delivery.preview_id, delivery.reason or "teardown requested")


def _not_wanted(services: Services, delivery: WebhookDelivery, held: lease.Lease | None = None) -> str:
    """Gitea says the PR is closed or the branch is gone: what this delivery wanted is not
    deployed, and whatever is up for it goes (unless a newer delivery wants something else).
    `held`: the preview's lease, when the job holds it already."""
    reason = "Gitea says the pull request is closed or the branch is gone"
    marked = Preview.change(
        delivery.preview_id, sha=delivery.head_sha, states=PreviewState.ACTIVE, state=PreviewState.DELETING
    )
    if not marked:
        return "superseded"
    Preview.update(waiting_since=None).where(Preview.id == delivery.preview_id).execute()
    Event.record(delivery.preview, "teardown", f"{reason}: nothing deployed")
    if held is not None:
        return teardown.remove(services, held, delivery.preview_id, reason)
    return teardown.teardown(services, delivery.preview_id, reason)


def process_delivery(services: Services, delivery_id: int) -> str:
    """Carry out one delivery's intent. Safe to re-run: a processed delivery is skipped.

    The delivery is planned first (app/usecases/intake/triage.py), unless it was already.
    Returns a short word for the job's result: ready, failed, deleted, superseded, skipped,
    pending approval, approved, refused, stale, labels read; or the planning's outcome when
    there is nothing to carry out (ignored, duplicate, superseded, refused). A Kubernetes or Gitea error
    propagates, so the queue retries the job later.
    """
    delivery = triage.triage(services, delivery_id)
    if delivery is None or delivery.processed_at is not None:
        return "skipped"
    if delivery.outcome != DeliveryOutcome.ACCEPTED:
        result = str(delivery.outcome)  # planned to nothing: ignored, duplicate, superseded, refused
    elif delivery.preview is None or _newer_delivery_exists(delivery):
        # A later push or close for the same preview already owns its desired state.
        result = "superseded"
    elif delivery.intent == DEPLOY:
        result = _deploy(services, delivery)
    elif delivery.intent == APPROVE:
        result = trust.approve(services, delivery)
        if result == "approved":
            jobs.enqueue_deploy(services.queue, delivery.preview_id, delivery.head_sha, f"approved-{delivery.id}")
    elif delivery.intent == LABELS:
        read = services.gitea.configured and _head_now(services, delivery.preview).sha is not None
        result = "labels read" if read else "skipped"
    elif delivery.intent == TEARDOWN:
        result = _teardown(services, delivery)
    else:
        result = "skipped"
    with database.atomic():
        if delivery.preview is not None:
            Event.record(delivery.preview, "delivery", f"delivery {delivery.id} ({delivery.intent}) {result}")
        WebhookDelivery.update(processed_at=utcnow()).where(WebhookDelivery.id == delivery.id).execute()
    log.info("delivery processed delivery_id=%s intent=%s result=%s", delivery.id, delivery.intent, result)
    return result
