"""The one read model of a preview: what the API, the MCP tools, the dashboard and the public
page show, computed in one place. Progress and the failure are read for a whole page of
previews in two queries, not two per preview."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import peewee

from app.domain.states import PreviewState
from app.models import Deployment, Event, Preview, Screenshot, WebhookDelivery

# What a failure at each phase means to a reviewer; the details are for the API and the operator.
FAILURE_SUMMARY = {
    "build": "the image could not be built",
    "deploy": "the preview could not be set up in the cluster",
    "rollout": "the app did not become available",
    "report": "the result could not be reported",
    "config": "the repository's .gitea/preview.yml is not valid",
    "database": "the preview's database could not be prepared",
    "migrate": "the database migration failed",
    "seed": "the database seed failed",
}


def failure_in_a_sentence(reason: str | None) -> str:
    """A failure reason ("rollout: pod x/y OOMKilled on node z") as anyone may read it: its
    phase's meaning, never the cluster's details."""
    phase = (reason or "").split(":", 1)[0]
    return FAILURE_SUMMARY.get(phase, "the preview failed")


def iso(moment: datetime | None) -> str | None:
    """UTC to the second, as the API and the MCP tools write times."""
    return moment.replace(microsecond=0).isoformat() + "Z" if moment else None


@dataclass(frozen=True)
class PreviewView:
    id: int
    public_id: str
    repository: str
    private: bool
    pr_number: int | None
    branch: str
    state: str
    progress: int  # 0 to 100: the pipeline's last step (100 once ready)
    url: str | None  # where it is (or will be) served
    head_sha: str
    deployed_sha: str | None
    namespace: str | None
    pinned: bool
    waiting: bool  # for a free slot
    failure_reason: str | None  # the last attempt's reason, with the cluster's details (writers, agents)
    failure: str | None  # the same in a sentence, for anyone
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    last_visit_at: datetime | None  # the data plane's counters last moved (TRAFFIC_METRICS_URL)
    slept_at: datetime | None  # asleep since (app/usecases/deploy/sleeping.py); None while awake

    @property
    def live_url(self) -> str | None:
        """The URL while it serves: a link worth clicking."""
        return self.url if self.state in PreviewState.SERVING else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON the API and the MCP tools answer with."""
        return {
            "id": self.id,
            "public_id": self.public_id,
            "repository": self.repository,
            "pr_number": self.pr_number,
            "branch": self.branch,
            "state": self.state,
            "progress": self.progress,
            "url": self.url,
            "head_sha": self.head_sha,
            "deployed_sha": self.deployed_sha,
            "namespace": self.namespace,
            "pinned": self.pinned,
            "waiting": self.waiting,
            "failure_reason": self.failure_reason,
            "expires_at": iso(self.expires_at),
            "last_visit_at": iso(self.last_visit_at),
            "slept_at": iso(self.slept_at) if self.state == PreviewState.SLEEPING else None,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


def view(preview: Preview) -> PreviewView:
    return views([preview])[0]


def views(previews: Iterable[Preview]) -> list[PreviewView]:
    """The views of `previews`, in their order."""
    listed = list(previews)
    ids = [preview.id for preview in listed]
    progress = _last_progress(ids)
    failed = _failure_reasons([p.id for p in listed if p.state == PreviewState.FAILED])
    return [_view(p, progress.get(p.id, 0), failed.get(p.id)) for p in listed]


def _view(preview: Preview, progress: int, failure_reason: str | None) -> PreviewView:
    failed = preview.state == PreviewState.FAILED
    return PreviewView(
        id=preview.id,
        public_id=preview.public_id,
        repository=preview.repository.full_name,
        private=bool(preview.repository.private),
        pr_number=preview.pr_number,
        branch=preview.branch,
        state=preview.state,
        progress=100 if preview.state in PreviewState.SERVING else progress,
        url=preview.url,
        head_sha=preview.head_sha,
        deployed_sha=preview.deployed_sha,
        namespace=preview.namespace,
        pinned=bool(preview.pinned),
        waiting=preview.waiting_since is not None,
        failure_reason=failure_reason if failed else None,
        failure=failure_in_a_sentence(failure_reason) if failed else None,
        created_at=preview.created_at,
        updated_at=preview.updated_at,
        expires_at=preview.expires_at,
        last_visit_at=preview.last_visit_at,
        slept_at=preview.slept_at,
    )


def _last_progress(preview_ids: list[int]) -> dict[int, int]:
    """Each preview's last recorded progress, in one query."""
    if not preview_ids:
        return {}
    last = (
        Event.select(peewee.fn.MAX(Event.id))
        .where(Event.preview.in_(preview_ids) & Event.progress.is_null(False))
        .group_by(Event.preview)
    )
    rows = Event.select(Event.preview, Event.progress).where(Event.id.in_(last)).tuples()
    return {preview_id: int(progress) for preview_id, progress in rows}


def _failure_reasons(preview_ids: list[int]) -> dict[int, str | None]:
    """Each failed preview's last attempt's reason, in one query."""
    if not preview_ids:
        return {}
    last = Deployment.select(peewee.fn.MAX(Deployment.id)).where(Deployment.preview.in_(preview_ids))
    rows = (
        Deployment.select(Deployment.preview, Deployment.failure_reason)
        .where(Deployment.id.in_(last.group_by(Deployment.preview)))
        .tuples()
    )
    return dict(rows)


def details(preview: Preview) -> dict[str, Any]:
    """What one preview's page in the API adds to its view: whether Gitea has been told, its
    database, every attempt and every event."""
    return {
        "gitea_report": report_summary(preview),
        "database": database_summary(preview),
        "screenshots": screenshot_summary(preview),
        "deployments": [
            {
                "head_sha": d.head_sha,
                "status": d.status,
                "image": d.image,
                "digest": d.digest,
                "timings": d.timings,
                "failure_reason": d.failure_reason,
                "created_at": iso(d.created_at),
            }
            for d in preview.deployments.order_by(Deployment.id)
        ],
        "deliveries": [delivery_summary(d) for d in deliveries_of(preview)],
        "events": [
            {
                "phase": e.phase,
                "message": e.message,
                "progress": e.progress,
                "duration_ms": e.duration_ms,
                "at": iso(e.created_at),
            }
            for e in preview.events.order_by(Event.id)
        ],
    }


def deliveries_of(preview: Preview, limit: int = 50) -> list[WebhookDelivery]:
    """The webhook deliveries about the preview's PR or branch, newest first, whatever became
    of them (accepted, duplicate, superseded, refused, still to plan)."""
    return list(
        WebhookDelivery.select()
        .where(WebhookDelivery.target_key == preview.target_key)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )


def delivery_summary(delivery: WebhookDelivery) -> dict[str, Any]:
    """One delivery as received and as planned: `GET /api/deliveries/<id>` and a preview's history."""
    return {
        "delivery_id": delivery.id,
        "gitea_delivery": delivery.delivery_uuid,
        "event_type": delivery.event_type,
        "action": delivery.action,
        "repository": delivery.repository_full_name,
        "target": delivery.target_key,
        "head_sha": delivery.head_sha,
        "intent": delivery.intent,
        "outcome": delivery.outcome,
        "reason": delivery.reason,
        "preview_id": delivery.preview_id,
        "received_at": iso(delivery.received_at),
        "processed_at": iso(delivery.processed_at),
    }


def report_summary(preview: Preview) -> dict[str, Any]:
    """Whether Gitea shows the preview's current state yet, and when the outbox tries again."""
    told = preview.reported_version >= preview.report_version
    return {
        "up_to_date": told,
        "failed_tries": 0 if told else preview.report_attempts,
        "next_try_at": None if told else iso(preview.report_next_at),
    }


def screenshot_summary(preview: Preview) -> list[dict[str, Any]]:
    """Its latest screenshots (the pictures are Gitea's attachments; a branch preview's have
    none) and what changed in each since the set it was compared with."""
    fields = (
        Screenshot.sha, Screenshot.page, Screenshot.viewport, Screenshot.taken_at, Screenshot.attachment_url,
        Screenshot.overlay_url, Screenshot.changed_share, Screenshot.compared_sha, Screenshot.compared_with,
    )  # fmt: skip
    return [
        {
            "sha": row.sha,
            "page": row.page,
            "viewport": row.viewport,
            "taken_at": iso(row.taken_at),
            "url": row.attachment_url,
            "changes_url": row.overlay_url,
            "changed_share": row.changed_share,
            "compared_sha": row.compared_sha,
            "compared_with": row.compared_with,
        }
        for row in Screenshot.select(*fields).where(Screenshot.preview == preview.id).order_by(Screenshot.id)
    ]


def database_summary(preview: Preview) -> dict[str, Any] | None:
    """What a preview's database is, never its password."""
    if not preview.database_engine:
        return None
    return {
        "engine": preview.database_engine,
        "mode": preview.database_mode,
        "name": preview.database_name,
        "cloned_from": preview.database_template,
        "seeded": preview.database_seeded_at is not None,
        "size_bytes": preview.database_size_bytes,
    }
