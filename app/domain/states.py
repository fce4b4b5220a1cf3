"""The words the service records and answers with: a preview's state, a deployment attempt's
status, a webhook delivery's outcome. `StrEnum`s: each member is its own string, so the database
columns, the JSON and the templates hold the plain word."""

from __future__ import annotations

from enum import StrEnum, nonmember


class PreviewState(StrEnum):
    QUEUED = "queued"
    BUILDING = "building"
    DEPLOYING = "deploying"
    READY = "ready"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"
    # An untrusted PR's commit, not built until a maintainer approves it.
    PENDING_APPROVAL = "pending_approval"  # 16 characters: the column's width
    # Ready, then idle for PREVIEW_IDLE_AFTER: scaled to zero, its route sends visitors to
    # the service's wake page (app/usecases/deploy/sleeping.py).
    SLEEPING = "sleeping"

    # The groups below are not states: `nonmember` keeps them out of the enumeration.
    ALL = nonmember((QUEUED, PENDING_APPROVAL, BUILDING, DEPLOYING, READY, SLEEPING, FAILED, DELETING, DELETED))
    # States in which the preview is live: it holds (or may come to hold) cluster resources.
    ACTIVE = nonmember((QUEUED, PENDING_APPROVAL, BUILDING, DEPLOYING, READY, SLEEPING, FAILED))
    # A deploy is wanted and has not concluded yet.
    DEPLOYING_STATES = nonmember((QUEUED, BUILDING, DEPLOYING))
    GONE = nonmember((DELETING, DELETED))
    # States Gitea is told about (app/usecases/deploy/reporting.py): a deleting preview says nothing
    # until it is deleted.
    REPORTED = nonmember((QUEUED, PENDING_APPROVAL, BUILDING, DEPLOYING, READY, SLEEPING, FAILED, DELETED))
    # Serving at its URL, awake or asleep: Gitea's status says success and links to it.
    SERVING = nonmember((READY, SLEEPING))


class DeploymentStatus(StrEnum):
    """One attempt at one commit (app.models.Deployment.status)."""

    PENDING = "pending"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"
    SUPERSEDED = "superseded"


class DeliveryOutcome(StrEnum):
    """What became of a webhook delivery (its row; intake answers one of the first three).

    Intake decides what needs no database and stores the signed body (`received`); a
    worker then plans it against the database and records one of the others."""

    RECEIVED = "received"  # stored and queued: a worker plans it
    IGNORED = "ignored"  # an event or branch we do not act on
    DUPLICATE = "duplicate"  # this delivery id, or the same work, was received before
    ACCEPTED = "accepted"  # planned work, carried out by the worker
    SUPERSEDED = "superseded"  # a newer delivery for the same preview was planned first
    REFUSED = "refused"  # its signature no longer matches the repository's current secret
