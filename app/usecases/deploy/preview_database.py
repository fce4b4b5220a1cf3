"""A preview's database: made (or cloned from a template) before the app rolls out,
migrated on every deploy, seeded once, dropped at teardown, swept when orphaned.

The pipeline calls `prepare` under the preview's lease and hands it a `JobRunner`
that runs one Job to completion or raises the pipeline's StepFailed.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from app.db import utcnow
from app.domain import databases
from app.domain.databases import IN_NAMESPACE, SHARED, Connection
from app.domain.k8s import database as objects
from app.domain.k8s.labels import PreviewSpec
from app.domain.k8s.workload import AppSpec
from app.domain.preview_file import Database
from app.domain.states import PreviewState
from app.models import Event, Preview
from app.settings import Settings
from app.usecases.deploy import policies
from app.usecases.ports import Cluster, SqlAdmin, SqlAdminError, TemplateAdmin

log = logging.getLogger(__name__)

TEMPLATE_SECRET = "preview-database-template"
# A preview row with no database.
FORGOTTEN = {
    "database_engine": None,
    "database_mode": None,
    "database_name": None,
    "database_template": None,
    "database_seeded_at": None,
    "database_size_bytes": None,
}
MAX_ORPHANS_PER_PASS = 10

# Runs one Job (a migrate or seed) to completion; raises the pipeline's StepFailed otherwise.
JobRunner = Callable[[dict, str], None]


@dataclass(frozen=True)
class BaseImage:
    """The commit a PR branched from: its image, and its own preview file's commands and env
    (with the operator's repository settings), which make the template. Nothing of the PR's."""

    sha: str
    image: str
    migrate: tuple[str, ...] | None
    seed: tuple[str, ...] | None
    env: dict[str, str]


def new_password() -> str:
    return secrets.token_hex(24)  # URL-safe as it is: DATABASE_URL needs no escaping


def _existing_password(kube: Cluster, namespace: str, engine: str) -> str | None:
    data = kube.read_secret_data(namespace, objects.SECRET) or {}
    return data.get("PGPASSWORD" if engine == "postgres" else "MYSQL_PASSWORD") or None


def prepare(
    kube: Cluster,
    settings: Settings,
    admins: dict[str, SqlAdmin],
    preview: Preview,
    spec: PreviewSpec,
    app: AppSpec,
    wanted: Database,
    run_job: JobRunner,
    base_image: Callable[[], BaseImage | None],
    record: Callable[..., None],
    should_stop: Callable[[], bool],
) -> str:
    """Make the database ready for `app`: server, Secret, migrate, and the first seed; returns
    the Secret the app's environment comes from.

    `record(**fields)` writes the preview row (under the lease); SqlAdminError and
    the pipeline's StepFailed propagate."""
    namespace = spec.names.namespace
    engine = wanted.engine
    admin = admins.get(engine)
    password = _existing_password(kube, namespace, engine) or new_password()
    policy = policies.database(settings)
    mode = SHARED if admin is not None else IN_NAMESPACE
    if preview.database_engine not in (None, engine) or preview.database_mode not in (None, mode):
        release(admins, preview)  # the file changed engine (or the operator the mode): start afresh
        record(**FORGOTTEN)
        preview = Preview.get_by_id(preview.id)
    seeded = preview.database_seeded_at is not None
    if admin is not None:
        name = databases.database_name(settings.database_prefix, preview.id)
        fresh = preview.database_name is None
        if preview.database_template is not None and not seeded:
            # A clone was begun and never recorded as done (the worker died): the copy may hold
            # the template's seed already, so it is not seeded again on top: made afresh instead.
            admin.drop(name)
            record(database_template=None)
            fresh = True
        # Recorded before it exists: a teardown after a crash here still drops it.
        record(database_engine=engine, database_mode=mode, database_name=name)
        cloned_from = None
        if fresh and isinstance(admin, TemplateAdmin) and (wanted.migrate or wanted.seed):
            cloned_from = _clone_template(
                kube, admin, settings, preview, spec, app, wanted, password, run_job, base_image
            )
        if cloned_from is None:
            admin.ensure(name, password)
        seeded = seeded or cloned_from is not None
        connection = admin.connection(name, password)
        kube.apply(objects.connection_secret(spec, connection, mode))
    else:
        connection = Connection(engine, objects.SERVER, databases.PORTS[engine], "app", "app", password)
        record(database_engine=engine, database_mode=mode, database_name=connection.name)
        kube.apply(objects.connection_secret(spec, connection, mode))  # before the server, which reads its password
        image = objects.server_image(policy, engine, wanted.version)
        for obj in objects.server_objects(spec, policy, connection, image):
            kube.apply(obj)
        if not kube.wait_for_statefulset(
            namespace, objects.SERVER, settings.rollout_timeout.total_seconds(), should_stop
        ):
            raise SqlAdminError(f"the {engine} server in the namespace did not become ready")
    if wanted.migrate:
        run_job(objects.command_job(spec, app, policy, "migrate", wanted.migrate, spec.head_sha), "migrate")
    if wanted.seed and not seeded:
        run_job(objects.command_job(spec, app, policy, "seed", wanted.seed, spec.head_sha), "seed")
        record(database_seeded_at=utcnow())
    if admin is not None:
        record(database_size_bytes=_size(admin, connection.name))
    return objects.SECRET


def _clone_template(
    kube: Cluster,
    admin: TemplateAdmin,
    settings: Settings,
    preview: Preview,
    spec: PreviewSpec,
    app: AppSpec,
    wanted: Database,
    password: str,
    run_job: JobRunner,
    base_image: Callable[[], BaseImage | None],
) -> str | None:
    """Create the preview's database as a copy of its base commit's template (made now if need
    be, migrated and seeded with the base commit's image); returns the template's name. None when
    there is no base to make one from, or another worker holds the template: then the caller
    creates an empty database, migrated and seeded like any other."""
    base = base_image()
    if base is None:
        return None
    template = databases.template_name(settings.database_prefix, preview.repository.full_name, base.sha)
    # Held through the clone, so the orphan sweep never drops a template being copied.
    with admin.exclusive(template) as held:
        if not held:
            return None
        if not admin.is_ready_template(template):
            admin.drop(template)  # half-made by a worker that died
            template_password = new_password()
            admin.ensure(template, template_password)
            template_connection = admin.connection(template, template_password)
            kube.apply(objects.connection_secret(spec, template_connection, SHARED, TEMPLATE_SECRET))
            Event.record(preview, "database", f"making template {template} at base {base.sha[:12]}")
            # The PR's env (and labels) would reach every later clone: the base's own only.
            base_app = AppSpec(image=base.image, env=dict(base.env))
            for kind, command in (("template-migrate", base.migrate), ("template-seed", base.seed)):
                if command:
                    job = objects.command_job(
                        spec, base_app, policies.database(settings), kind, command, base.sha, TEMPLATE_SECRET
                    )
                    run_job(job, kind)
            admin.mark_template(template)  # frozen: its role can no longer log in or own it
            kube.delete_secret(spec.names.namespace, TEMPLATE_SECRET)
        Event.record(preview, "database", f"cloning {template} (base {base.sha[:12]})")
        # Recorded before the copy: a retry after a crash here knows a clone was under way.
        Preview.update(database_template=template).where(Preview.id == preview.id).execute()
        admin.ensure(databases.database_name(settings.database_prefix, preview.id), password, template=template)
        Preview.update(database_template=template, database_seeded_at=utcnow()).where(
            Preview.id == preview.id
        ).execute()
        return template


def _size(admin: SqlAdmin, name: str) -> int | None:
    try:
        return admin.size(name)
    except SqlAdminError:
        return None  # only for show


def release(admins: dict[str, SqlAdmin], preview: Preview) -> None:
    """Drop the preview's database and role on the shared server (the namespace holds the rest).
    SqlAdminError propagates: the teardown is retried, nothing is reported gone that is not."""
    if preview.database_mode != SHARED or not preview.database_name:
        return
    admin = admins.get(preview.database_engine or "")
    if admin is None:
        log.warning("no admin URL for %s: database %s left behind", preview.database_engine, preview.database_name)
        return
    admin.drop(preview.database_name)
    Event.record(preview, "teardown", f"database {preview.database_name} dropped")


def forget_dropped(preview: Preview) -> None:
    """Record that the shared-server database `release` dropped is gone (unless the row names
    another one by now)."""
    if preview.database_mode == SHARED and preview.database_name:
        Preview.update(**FORGOTTEN).where(
            (Preview.id == preview.id) & (Preview.database_name == preview.database_name)
        ).execute()


def collect_orphans(settings: Settings, admins: dict[str, SqlAdmin], now: datetime, dry_run: bool = False) -> list[str]:
    """Drop shared-server databases no live preview owns, and templates no live preview was cloned from.

    The same fail-safes as namespaces: only names of our shape, never when the service's
    database knows no previews, at most MAX_ORPHANS_PER_PASS a pass, and a preview's is
    dropped only under its lease."""
    dropped: list[str] = []
    for admin in admins.values():
        names = admin.names(settings.database_prefix)  # SqlAdminError: nothing dropped
        if names and not Preview.select().exists():
            raise SqlAdminError("the service's database knows no previews but the server has preview databases")
        doomed = [name for name in sorted(names) if _orphaned(settings, admin, name)]
        if len(doomed) > MAX_ORPHANS_PER_PASS:
            raise SqlAdminError(f"{len(doomed)} orphan databases in one pass (limit {MAX_ORPHANS_PER_PASS})")
        for name in doomed:
            if dry_run or _drop_orphan(settings, admin, name, now):
                dropped.append(name)
    return dropped


def _orphaned(settings: Settings, admin: SqlAdmin, name: str) -> bool:
    prefix = settings.database_prefix
    if databases.is_template(prefix, name):
        in_use = Preview.select().where((Preview.database_template == name) & Preview.state.in_(PreviewState.ACTIVE))
        return not in_use.exists()
    owner = databases.owner_id(prefix, name)
    if owner is None:
        return False
    preview = Preview.get_or_none(Preview.id == owner)
    return preview is None or preview.state == PreviewState.DELETED


def _drop_orphan(settings: Settings, admin: SqlAdmin, name: str, now: datetime) -> bool:
    owner = databases.owner_id(settings.database_prefix, name)
    if owner is None:  # a template: dropped only when no worker is making or cloning it
        assert isinstance(admin, TemplateAdmin)
        with admin.exclusive(name) as held:
            if not held or not _orphaned(settings, admin, name):
                return False
            admin.drop(name)
            return True
    lease_owner = f"sweep-{secrets.token_hex(4)}"
    taken = Preview.take_lease(owner, lease_owner, now + settings.lease_ttl, now)
    if not taken and Preview.get_or_none(Preview.id == owner) is not None:
        return False  # someone is acting on that preview: not now
    try:
        if not _orphaned(settings, admin, name):
            return False
        admin.drop(name)
        log.info("orphan database dropped name=%s", name)
        return True
    finally:
        Preview.release_lease(owner, lease_owner)
