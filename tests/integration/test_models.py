"""Schema and model behaviour, on SQLite and PostgreSQL alike (the `database_url` fixture runs both)."""

from datetime import timedelta

import peewee
import pytest

from app.db import database, utcnow
from app.domain.states import PreviewState
from app.migrations import apply_migrations, pending
from app.models import ALL_MODELS, Deployment, Event, Preview, Repository, WebhookDelivery


def test_migrations_create_every_column_the_models_use(db):
    for model in ALL_MODELS:
        table = model._meta.table_name
        in_database = {column.name for column in database.get_columns(table)}
        in_model = {field.column_name for field in model._meta.sorted_fields}
        assert in_database == in_model, table


def test_migrations_are_applied_once(db):
    assert pending(database.obj) == []
    assert apply_migrations(database.obj) == []


def _repository():
    return Repository.create(full_name="acme/shop", clone_url="http://git/acme/shop.git")


def _preview(repository, key="acme/shop#1", **fields):
    defaults = dict(repository=repository, target_key=key, pr_number=1, branch="feature/x", head_sha="a" * 40)
    return Preview.create(**{**defaults, **fields})


def test_one_preview_per_target(db):
    repository = _repository()
    _preview(repository)
    with pytest.raises(peewee.IntegrityError), database.atomic():
        _preview(repository)


def test_one_deployment_per_preview_and_sha(db):
    preview = _preview(_repository())
    Deployment.create(preview=preview, head_sha="a" * 40)
    with pytest.raises(peewee.IntegrityError), database.atomic():
        Deployment.create(preview=preview, head_sha="a" * 40)
    Deployment.create(preview=preview, head_sha="b" * 40)
    assert [d.head_sha for d in preview.deployments.order_by(Deployment.id)] == ["a" * 40, "b" * 40]


def test_json_fields_round_trip(db):
    preview = _preview(_repository())
    Deployment.create(preview=preview, head_sha="a" * 40, timings={"build": 12.5, "rollout": 3})
    assert Deployment.get().timings == {"build": 12.5, "rollout": 3}


def test_deleting_a_repository_cascades(db):
    repository = _repository()
    preview = _preview(repository)
    Event.record(preview, "queued", "hello")
    Deployment.create(preview=preview, head_sha="a" * 40)
    delivery = WebhookDelivery.create(
        delivery_uuid="u", event="push", event_type="push", outcome="accepted", preview=preview
    )
    repository.delete_instance()
    assert Preview.select().count() == Event.select().count() == Deployment.select().count() == 0
    assert WebhookDelivery.get_by_id(delivery.id).preview_id is None


def test_open_pr_for_branch_ignores_deleted_previews_and_branch_previews(db):
    repository = _repository()
    _preview(repository, key="acme/shop@task/x", pr_number=None, branch="task/x")
    assert Preview.open_pr_for_branch(repository, "task/x") is None
    pr = _preview(repository, key="acme/shop#5", pr_number=5, branch="task/x")
    assert Preview.open_pr_for_branch(repository, "task/x") == pr
    Preview.change(pr.id, state=PreviewState.DELETED)
    assert Preview.open_pr_for_branch(repository, "task/x") is None


def test_change_rejects_unknown_states(db):
    preview = _preview(_repository())
    with pytest.raises(ValueError, match="bogus"):
        Preview.change(preview.id, state="bogus")


def test_extending_a_preview_never_goes_past_the_maximum_ttl(db, settings):
    from app.bootstrap import bootstrap
    from app.usecases.access.tokens import OPERATOR
    from app.usecases.operations.commands import extend

    now = utcnow()
    preview = _preview(_repository(), expires_at=now + timedelta(days=13, hours=12))
    bounded = bootstrap(settings.replace(max_preview_ttl=timedelta(days=14)))
    assert extend(bounded, OPERATOR, preview, timedelta(hours=24), now) == now + timedelta(days=14)
    assert Preview.get_by_id(preview.id).expires_at == now + timedelta(days=14)
    fresh = _preview(preview.repository, key="acme/shop#2", expires_at=now + timedelta(hours=1))
    assert extend(bounded, OPERATOR, fresh, timedelta(hours=24), now) == now + timedelta(hours=25)


def test_extending_is_a_compare_and_set_on_the_expiry_read(db, settings):
    from app.bootstrap import bootstrap
    from app.usecases.access.tokens import OPERATOR
    from app.usecases.operations.commands import extend

    services = bootstrap(settings)
    now = utcnow()
    preview = _preview(_repository(), expires_at=now + timedelta(hours=1))
    # A deploy set a new expiry after the page read the old one: the click changes nothing.
    Preview.update(expires_at=now + timedelta(hours=5)).where(Preview.id == preview.id).execute()
    assert extend(services, OPERATOR, preview, timedelta(hours=24), now) is None
    assert Preview.get_by_id(preview.id).expires_at == now + timedelta(hours=5)
    # Nor does it bring a torn-down preview an expiry.
    gone = _preview(preview.repository, key="acme/shop#3", state=PreviewState.DELETED, expires_at=None)
    assert extend(services, OPERATOR, gone, timedelta(hours=24), now) is None


def test_a_slot_held_by_a_deleted_preview_is_freed(db):
    from app.usecases.deploy.capacity import free_stale_slots

    repository = _repository()
    leaked = _preview(repository, state=PreviewState.DELETED, holds_slot=True)
    live = _preview(repository, key="acme/shop#2", state=PreviewState.READY, holds_slot=True)
    going = _preview(repository, key="acme/shop#3", state=PreviewState.DELETING, holds_slot=True)
    assert free_stale_slots(utcnow(), dry_run=True) == [leaked.id]
    assert Preview.get_by_id(leaked.id).holds_slot  # a dry run changes nothing
    assert free_stale_slots(utcnow()) == [leaked.id]
    assert [p.id for p in Preview.active()] == [live.id, going.id]  # a namespace still going keeps its slot
    assert free_stale_slots(utcnow()) == []
