"""peewee models. The schema itself is owned by app/migrations, not by these classes.

Queries that callers need live here as named class methods.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

import peewee

from app.db import database, utcnow
from app.domain.states import DeliveryOutcome, DeploymentStatus, PreviewState


class JSONField(peewee.TextField):
    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, sort_keys=True)

    def python_value(self, value: str | None) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False
        # A save writes only the fields this copy changed, never stale values of the others.
        only_save_dirty = True


class Repository(BaseModel):
    full_name = peewee.CharField(max_length=255, unique=True)
    clone_url = peewee.CharField(max_length=1024)
    private = peewee.BooleanField(default=False)
    # Per-repository options: image (skip the build), dockerfile, port, health_path, env, pod_labels.
    settings: Any = JSONField(default=dict)
    created_at = peewee.DateTimeField(default=utcnow)
    # Registered (`flask repos add`): deliveries naming it must be signed with this secret.
    webhook_secret = peewee.CharField(max_length=128, null=True)
    hook_id = peewee.IntegerField(null=True)  # the webhook the service made for it in Gitea
    gitea_id = peewee.IntegerField(null=True, unique=True)  # Gitea's id: the same after a rename
    checked_at = peewee.DateTimeField(null=True)  # when the scheduler last asked Gitea about it
    missing_since = peewee.DateTimeField(null=True)  # Gitea has answered 404 for it since (deleted, or our access lost)
    monthly_budget = peewee.FloatField(null=True)  # the operator's, in place of PREVIEW_BUDGET_PER_REPOSITORY

    def __repr__(self) -> str:  # never the secret
        return f"<Repository {self.full_name}>"

    @classmethod
    def named(cls, full_name: str) -> Repository | None:
        """Gitea's names ignore case. A registered row first: if an older release stored the same
        repository twice in two letter cases, the one with its own secret decides."""
        found = cls.select().where(peewee.fn.LOWER(cls.full_name) == full_name.lower())
        return found.order_by(cls.webhook_secret.is_null(), cls.id).first()

    def rename(self, full_name: str, clone_url: str) -> None:
        """Gitea renamed (or moved) the repository: its row, its previews and their deliveries
        follow, so later deliveries find the same previews. Their names (namespace, host) stay."""
        old = self.full_name
        with self._meta.database.atomic():
            for preview in Preview.select().where(Preview.repository == self):
                Preview.update(target_key=full_name + preview.target_key[len(old) :]).where(
                    Preview.id == preview.id
                ).execute()
            renamed_key = peewee.Value(full_name).concat(peewee.fn.SUBSTR(WebhookDelivery.target_key, len(old) + 1))
            WebhookDelivery.update(target_key=renamed_key, repository_full_name=full_name).where(
                (WebhookDelivery.repository_full_name == old) & WebhookDelivery.target_key.is_null(False)
            ).execute()
            Repository.update(full_name=full_name, clone_url=clone_url).where(Repository.id == self.id).execute()
        self.full_name, self.clone_url = full_name, clone_url

    @classmethod
    def upsert(cls, full_name: str, clone_url: str, private: bool = False) -> Repository:
        fields = {"clone_url": clone_url, "private": private}
        existing = cls.named(full_name)  # in whatever letter case it was first stored
        repo, created = (
            (existing, False) if existing is not None else cls.get_or_create(full_name=full_name, defaults=fields)
        )
        if not created and any(getattr(repo, key) != value for key, value in fields.items()):
            for key, value in fields.items():
                setattr(repo, key, value)
            repo.save()
        return repo


class Preview(BaseModel):
    repository = peewee.ForeignKeyField(Repository, backref="previews", on_delete="CASCADE")
    # "org/repo#12" for a pull request, "org/repo@task/x" for a task branch.
    target_key = peewee.CharField(max_length=1024, unique=True)
    # Its page's address (/previews/<public_id>): random, so ids cannot be enumerated.
    public_id = peewee.CharField(max_length=32, unique=True, default=lambda: secrets.token_hex(16))
    pr_number = peewee.IntegerField(null=True)
    branch = peewee.CharField(max_length=1024)
    head_sha = peewee.CharField(max_length=64)
    deployed_sha = peewee.CharField(max_length=64, null=True)
    state = peewee.CharField(max_length=16, default=PreviewState.QUEUED, index=True)
    approved = peewee.BooleanField(default=False)  # unused since m0005: see approved_sha
    from_fork = peewee.BooleanField(default=False)
    approved_sha = peewee.CharField(max_length=64, null=True)  # the commit a maintainer approved
    approved_by = peewee.CharField(max_length=255, null=True)
    approval_label_on = peewee.BooleanField(default=False)  # the approval label, as last seen on the PR
    pinned = peewee.BooleanField(default=False)  # PR label preview:keep: never expires
    waiting_since = peewee.DateTimeField(null=True, index=True)  # in line for a slot since
    # A new preview of a repository over its monthly budget: out of the line until it allows.
    budget_held_since = peewee.DateTimeField(null=True)
    holds_slot = peewee.BooleanField(default=False, index=True)  # counts against MAX_ACTIVE_PREVIEWS
    lease_owner = peewee.CharField(max_length=128, null=True)  # the worker acting on it now
    lease_expires_at = peewee.DateTimeField(null=True)
    slug = peewee.CharField(max_length=63, null=True)
    namespace = peewee.CharField(max_length=63, null=True)
    url = peewee.CharField(max_length=1024, null=True)
    credentials_ref = peewee.CharField(max_length=253, null=True)
    expires_at = peewee.DateTimeField(null=True, index=True)
    # The database its preview file asked for (engine postgres|mysql, mode shared|in-namespace).
    database_engine = peewee.CharField(max_length=16, null=True)
    database_mode = peewee.CharField(max_length=16, null=True)
    database_name = peewee.CharField(max_length=63, null=True)
    database_template = peewee.CharField(max_length=63, null=True)  # cloned from this template
    database_seeded_at = peewee.DateTimeField(null=True)  # the seed ran (or came with the template)
    database_size_bytes = peewee.BigIntegerField(null=True)  # measured on the shared server after a deploy
    # The target key the preview was created under: its names (namespace, host, app) come from
    # it, so a rename of the repository changes none of them.
    names_key = peewee.CharField(max_length=1024, null=True)
    # What Gitea has been told (the report outbox): each change of state makes a report due
    # (report_version); Gitea has it once reported_version catches up. Retried with backoff.
    report_version = peewee.IntegerField(default=0)
    reported_version = peewee.IntegerField(default=0)
    report_detail = peewee.TextField(null=True)  # the why that goes with the state (a failure, a teardown)
    report_attempts = peewee.IntegerField(default=0)
    report_next_at = peewee.DateTimeField(null=True, index=True)
    # The data plane's request count for its app, as last read, and when it last moved.
    requests_seen = peewee.FloatField(null=True)
    last_visit_at = peewee.DateTimeField(null=True)
    # Sleeping when idle (m0017): idleness counts from the later of ready_since and the last
    # visit; idle_after_seconds is NULL for a preview that never sleeps.
    ready_since = peewee.DateTimeField(null=True)
    idle_after_seconds = peewee.IntegerField(null=True)
    slept_at = peewee.DateTimeField(null=True)  # its wake route is (or may still be) in place
    wake_requested_at = peewee.DateTimeField(null=True)
    wake_endpoint = peewee.CharField(max_length=64, null=True)  # where its wake route leads (ip:port)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    @staticmethod
    def pr_key(repository: str, number: int) -> str:
        return f"{repository}#{number}"

    @staticmethod
    def branch_key(repository: str, branch: str) -> str:
        return f"{repository}@{branch}"

    @classmethod
    def by_key(cls, target_key: str) -> Preview | None:
        return cls.get_or_none(cls.target_key == target_key)

    @classmethod
    def open_pr_for_branch(cls, repository: Repository, branch: str) -> Preview | None:
        """The live PR preview whose head is `branch`, if any."""
        return (
            cls.select()
            .where(
                (cls.repository == repository)
                & (cls.branch == branch)
                & cls.pr_number.is_null(False)
                & (cls.state.in_(PreviewState.ACTIVE))
            )
            .first()
        )

    @classmethod
    def active(cls) -> peewee.ModelSelect:
        """Previews holding a slot: what MAX_ACTIVE_PREVIEWS counts."""
        return cls.select().where(cls.holds_slot == True)  # noqa: E712

    @classmethod
    def expired(cls, now: datetime) -> peewee.ModelSelect:
        return cls.select().where(
            cls.state.in_(PreviewState.ACTIVE) & (cls.expires_at <= now) & (cls.pinned == False)  # noqa: E712
        )

    @classmethod
    def waiting(cls) -> peewee.ModelSelect:
        """Previews in line for a slot, first come first served."""
        return (
            cls.select()
            .where(
                (cls.state == PreviewState.QUEUED)
                & (cls.holds_slot == False)  # noqa: E712
                & cls.waiting_since.is_null(False)
                & cls.budget_held_since.is_null()
            )
            .order_by(cls.waiting_since, cls.id)
        )

    @classmethod
    def stuck(cls, before: datetime, now: datetime, capped: bool) -> peewee.ModelSelect:
        """In a transitional state with nobody working on it: its worker's lease expired,
        or (no lease at all: the job was lost) untouched since `before`. Under a cap, those
        in line for a slot are not stuck: they wait, and are started as slots free."""
        transitional = (PreviewState.QUEUED, PreviewState.BUILDING, PreviewState.DEPLOYING, PreviewState.DELETING)
        lease_expired = cls.lease_owner.is_null(False) & (cls.lease_expires_at < now)
        forgotten = cls.lease_owner.is_null() & (cls.updated_at < before)
        # Held back by its budget: it waits, and the scheduler lets it go (budgets.release).
        held = cls.budget_held_since.is_null(False) & (cls.holds_slot == False)  # noqa: E712
        query = cls.select().where(cls.state.in_(transitional) & (lease_expired | forgotten) & ~held)
        if capped:
            # In line: waiting for a slot. An approved preview (queued, no slot, not in line yet)
            # whose job was lost is stuck, not waiting.
            in_line = (cls.state == PreviewState.QUEUED) & (cls.holds_slot == False) & cls.waiting_since.is_null(False)  # noqa: E712
            query = query.where(~in_line)
        return query

    @classmethod
    def change(
        cls,
        preview_id: int,
        *,
        sha: str | None = None,
        states: tuple[str, ...] | None = None,
        owner: str | None = None,
        also: peewee.Expression | None = None,
        now: datetime | None = None,
        **fields: Any,
    ) -> bool:
        """Compare-and-set: write `fields` only if the row still wants `sha`, is in one of
        `states` and is leased by `owner`, as the writer believed. True when it took; False
        means someone else moved it. `also` adds a condition of the caller's.

        A new reported state makes a report due in the same statement (with `report_detail`,
        the why, if given): a worker that dies right after still leaves Gitea to be told."""
        if "state" in fields and fields["state"] not in PreviewState.ALL:
            raise ValueError(f"unknown preview state {fields['state']!r}")
        now = now or utcnow()
        if fields.get("state") in PreviewState.REPORTED:
            fields.update(cls.report_due_fields(now, fields.pop("report_detail", None)))
        query = cls.update(updated_at=now, **fields).where(cls.id == preview_id)
        if sha is not None:
            query = query.where(cls.head_sha == sha)
        if states is not None:
            query = query.where(cls.state.in_(states))
        if owner is not None:
            query = query.where(cls.lease_owner == owner)
        if also is not None:
            query = query.where(also)
        return query.execute() == 1

    @classmethod
    def report_due_fields(cls, now: datetime, detail: str | None) -> dict[str, Any]:
        """The fields of an update that makes a new report due now."""
        return {
            "report_version": cls.report_version + 1,
            "report_detail": detail,
            "report_attempts": 0,
            "report_next_at": now,
        }

    @classmethod
    def reports_due(cls, now: datetime, limit: int = 100) -> peewee.ModelSelect:
        """Previews whose state Gitea has not been told, due for a try, and that no worker is
        acting on (a worker reports for itself; a dead one's lease has expired)."""
        free = cls.lease_owner.is_null() | (cls.lease_expires_at < now)
        return (
            cls.select()
            .where(
                (cls.report_version > cls.reported_version)
                & (cls.report_next_at <= now)
                & cls.state.in_(PreviewState.REPORTED)
                & free
            )
            .order_by(cls.report_next_at)
            .limit(limit)
        )

    # --- the lease: one worker acts on a preview at a time ---------------------------

    @classmethod
    def take_lease(cls, preview_id: int, owner: str, until: datetime, now: datetime) -> bool:
        free = cls.lease_owner.is_null() | (cls.lease_expires_at < now) | (cls.lease_owner == owner)
        taken = cls.update(lease_owner=owner, lease_expires_at=until).where((cls.id == preview_id) & free)
        return taken.execute() == 1

    @classmethod
    def renew_lease(cls, preview_id: int, owner: str, until: datetime) -> bool:
        renewed = cls.update(lease_expires_at=until).where((cls.id == preview_id) & (cls.lease_owner == owner))
        return renewed.execute() == 1

    @classmethod
    def release_lease(cls, preview_id: int, owner: str) -> None:
        cls.update(lease_owner=None, lease_expires_at=None).where(
            (cls.id == preview_id) & (cls.lease_owner == owner)
        ).execute()


class Deployment(BaseModel):
    """One attempt at one head sha: the history of a preview."""

    preview = peewee.ForeignKeyField(Preview, backref="deployments", on_delete="CASCADE")
    head_sha = peewee.CharField(max_length=64)
    image = peewee.CharField(max_length=1024, null=True)
    digest = peewee.CharField(max_length=128, null=True)
    status = peewee.CharField(max_length=16, default=DeploymentStatus.PENDING)
    timings: Any = JSONField(default=dict)
    failure_reason = peewee.TextField(null=True)
    build_log_tail = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("preview", "head_sha"), True),)


class Event(BaseModel):
    """Append-only progress log of a preview."""

    preview = peewee.ForeignKeyField(Preview, backref="events", on_delete="CASCADE")
    phase = peewee.CharField(max_length=32)
    message = peewee.TextField()
    progress = peewee.IntegerField(null=True)
    duration_ms = peewee.IntegerField(null=True)
    created_at = peewee.DateTimeField(default=utcnow, index=True)

    @classmethod
    def record(cls, preview: Preview, phase: str, message: str, **fields: Any) -> Event:
        return cls.create(preview=preview, phase=phase, message=message, **fields)


# Intake's insert, compiled once per database type (WebhookDelivery.store_received).
_COMPILED_INSERTS: dict[type, tuple[str, list[str]]] = {}


class WebhookDelivery(BaseModel):
    """Every delivery that passed the signature check: the inbox and the outbox.

    Stored as received (body and signature, under Gitea's delivery id), planned by a worker
    (outcome, target, preview), then carried out (processed_at)."""

    delivery_uuid = peewee.CharField(max_length=64, unique=True)
    event = peewee.CharField(max_length=64)
    event_type = peewee.CharField(max_length=64)
    action = peewee.CharField(max_length=64, null=True)
    repository_full_name = peewee.CharField(max_length=255, null=True)
    target_key = peewee.CharField(max_length=1024, null=True)
    head_sha = peewee.CharField(max_length=64, null=True)
    intent = peewee.CharField(max_length=16, null=True)
    work_key = peewee.CharField(max_length=64, null=True, index=True)
    outcome = peewee.CharField(max_length=16)
    reason = peewee.TextField(null=True)
    actor = peewee.CharField(max_length=255, null=True)  # who sent it (an approval's approver)
    body = peewee.TextField(null=True)  # the signed body, until the delivery is planned
    signature = peewee.CharField(max_length=128, null=True)
    preview = peewee.ForeignKeyField(Preview, null=True, backref="deliveries", on_delete="SET NULL")
    received_at = peewee.DateTimeField(default=utcnow)
    processed_at = peewee.DateTimeField(null=True)

    UNFINISHED = (DeliveryOutcome.RECEIVED, DeliveryOutcome.ACCEPTED)
    # What intake stores of a delivery, in the compiled statement's order (see `store_received`).
    RECEIVED_FIELDS = (
        "delivery_uuid",
        "event",
        "event_type",
        "action",
        "repository_full_name",
        "target_key",
        "head_sha",
        "intent",
        "work_key",
        "actor",
        "outcome",
        "reason",
        "body",
        "signature",
        "received_at",
    )

    @classmethod
    def store_received(cls, **values: Any) -> int | None:
        """Insert a delivery unless its Gitea id is stored already: its new id, or None.

        Intake's one statement, compiled once per process: building it with peewee took
        about 1 ms of CPU per webhook, a sixth of intake's time. Each value stands in the
        compiled statement where a placeholder named after its field stood."""
        db = database.obj
        compiled = _COMPILED_INSERTS.get(type(db))
        if compiled is None:
            placeholders = {name: f"\x00{name}" for name in cls.RECEIVED_FIELDS}
            query = cls.insert(**placeholders).on_conflict_ignore().returning(cls.id)
            sql, params = query.sql()
            compiled = _COMPILED_INSERTS[type(db)] = (sql, [str(param)[1:] for param in params])
        sql, order = compiled
        values.setdefault("received_at", utcnow())
        fields = cls._meta.fields
        params = [fields[name].db_value(values.get(name)) for name in order]
        rows = db.execute_sql(sql, params).fetchall()  # to the end: SQLite commits only then
        return int(rows[0][0]) if rows else None

    @classmethod
    def unfinished(cls, received_before: datetime, limit: int = 100) -> list[WebhookDelivery]:
        """Deliveries received before `received_before` whose work is not done: still to plan,
        or planned and not carried out (their job may be waiting, running, or lost)."""
        return list(
            cls.select()
            .where(cls.processed_at.is_null() & cls.outcome.in_(cls.UNFINISHED) & (cls.received_at < received_before))
            .order_by(cls.id)
            .limit(limit)
        )


class PreviewUsage(BaseModel):
    """A stretch of time a preview held cluster resources, with what its app container
    requested: what its cost is computed from (priced when read). Open while it lasts."""

    preview = peewee.ForeignKeyField(Preview, backref="usage", on_delete="CASCADE")
    repository = peewee.ForeignKeyField(Repository, on_delete="CASCADE")
    cpu_cores = peewee.FloatField()
    memory_gib = peewee.FloatField()
    started_at = peewee.DateTimeField()
    ended_at = peewee.DateTimeField(null=True, index=True)

    class Meta:
        table_name = "preview_usage"
        indexes = ((("repository", "started_at"), False),)


class Screenshot(BaseModel):
    """One page of a preview at one commit and one viewport, as its screenshot Job saw it;
    only the latest set of each preview is kept (the next set is compared with it)."""

    preview = peewee.ForeignKeyField(Preview, backref="screenshots", on_delete="CASCADE")
    sha = peewee.CharField(max_length=40)
    page = peewee.CharField(max_length=256)
    viewport = peewee.CharField(max_length=16)
    png = peewee.BlobField(null=True)  # None: the page gave no picture
    taken_at = peewee.DateTimeField(default=utcnow)
    compared_sha = peewee.CharField(max_length=40, null=True)
    compared_with = peewee.CharField(max_length=255, null=True)  # what compared_sha is, in words
    changed_share = peewee.FloatField(null=True)  # None: nothing to compare with
    attachment_id = peewee.BigIntegerField(null=True)
    attachment_url = peewee.CharField(max_length=1024, null=True)
    overlay_attachment_id = peewee.BigIntegerField(null=True)
    overlay_url = peewee.CharField(max_length=1024, null=True)

    class Meta:
        indexes = ((("preview", "sha", "page", "viewport"), True),)


ALL_MODELS = (Repository, Preview, Deployment, Event, WebhookDelivery, PreviewUsage, Screenshot)


class ApiToken(BaseModel):
    """A bearer token for the API. Only its SHA-256 is stored; the token is shown once."""

    name = peewee.CharField(max_length=255)
    token_hash = peewee.CharField(max_length=64, unique=True)
    scope = peewee.CharField(max_length=16)  # read | deploy | admin
    repository = peewee.ForeignKeyField(Repository, null=True, on_delete="CASCADE")  # None: every repository
    created_at = peewee.DateTimeField(default=utcnow)
    last_used_at = peewee.DateTimeField(null=True)
    revoked_at = peewee.DateTimeField(null=True)
