"""One writer per preview, on SQLite and PostgreSQL: conditional changes, the lease, exact capacity."""

import threading
from datetime import timedelta

import pytest

from app.db import database, utcnow
from app.domain.planning import TEARDOWN, Plan
from app.domain.states import PreviewState
from app.models import Preview
from app.usecases.deploy import capacity, lease
from app.usecases.intake import desired_state
from app.usecases.operations import lifecycle
from tests.testbed.helpers import want_pr

SHA_A, SHA_B = "a" * 40, "b" * 40


def want(sha, number=12):
    return want_pr(number, sha, action="synchronized")


def test_a_worker_holding_an_old_copy_cannot_undo_a_newer_commit(db):
    preview = want(SHA_A)
    worker = lease.Lease(preview.id, timedelta(seconds=30))
    assert worker.acquire()
    stale = Preview.get_by_id(preview.id)  # what the worker loaded, for sha A

    want(SHA_B)  # a webhook records the newer commit while the worker holds the preview

    moved = Preview.change(
        preview.id, sha=SHA_A, states=PreviewState.DEPLOYING_STATES, owner=worker.owner, state=PreviewState.BUILDING
    )
    assert moved is False
    stale.url = "https://stale.example"
    stale.save()  # even a save of the stale copy writes only what it changed
    now = Preview.get_by_id(preview.id)
    assert (now.head_sha, now.state, now.url) == (SHA_B, PreviewState.QUEUED, "https://stale.example")


def test_a_teardown_request_wins_over_a_worker_mid_deploy(db):
    preview = want(SHA_A)
    worker = lease.Lease(preview.id, timedelta(seconds=30))
    assert worker.acquire()
    assert Preview.change(preview.id, sha=SHA_A, owner=worker.owner, state=PreviewState.DEPLOYING)
    closed = Plan(intent=TEARDOWN, reason="pull request closed", target_key="acme/shop#12", action="closed")
    assert desired_state.want_teardown(closed, ask_gitea_first=False) is not None
    ready = Preview.change(
        preview.id, sha=SHA_A, states=PreviewState.DEPLOYING_STATES, owner=worker.owner, state=PreviewState.READY
    )
    assert ready is False
    assert Preview.get_by_id(preview.id).state == PreviewState.DELETING


def test_the_lease_has_one_owner_until_it_expires(db):
    preview = want(SHA_A)
    first, second = lease.Lease(preview.id, timedelta(seconds=30)), lease.Lease(preview.id, timedelta(seconds=30))
    assert first.acquire()
    assert not second.acquire()
    second.release()  # not its lease: nothing happens
    assert not second.acquire()
    with pytest.raises(lease.LeaseHeld), lease.hold(preview.id, timedelta(seconds=30)):
        pass

    # The first owner stalls past its expiry; another takes over, and the first learns it lost.
    later = utcnow() + timedelta(seconds=31)
    assert Preview.take_lease(preview.id, second.owner, later + second.ttl, later)
    assert first.renew() is False
    assert first.lost
    first.release()
    assert Preview.get_by_id(preview.id).lease_owner == second.owner


def test_hold_if_free_yields_nothing_when_taken_and_never_hides_an_error_of_its_block(db):
    preview = want(SHA_A)
    with lease.hold_if_free(preview.id, timedelta(seconds=30)) as held:
        assert held is not None
        with lease.hold_if_free(preview.id, timedelta(seconds=30)) as second:
            assert second is None

        def inside_a_taken_lease() -> None:
            with lease.hold_if_free(preview.id, timedelta(seconds=30)) as third:
                assert third is None
                raise lease.LeaseHeld("another preview's, say")

        with pytest.raises(lease.LeaseHeld, match="another preview's"):  # the block's own error, not swallowed
            inside_a_taken_lease()
    assert Preview.get_by_id(preview.id).lease_owner is None


def test_a_free_slot_is_read_without_claiming_it(db, settings):
    first, second = want(SHA_A, number=1), want(SHA_B, number=2)
    limited, now = settings.replace(max_active_previews=1), utcnow()
    assert capacity.slot_free(limited, first, now)
    assert not Preview.get_by_id(first.id).holds_slot
    assert capacity.claim_slot(limited, first.id, now) is None
    second = Preview.get_by_id(second.id)
    assert not capacity.slot_free(limited, second, now)
    assert capacity.slot_free(settings.replace(max_active_previews=None), second, now)
    assert capacity.claim_slot(limited, second.id, now) == 1


def test_hold_renews_in_the_background_and_releases(db):
    preview = want(SHA_A)
    with lease.hold(preview.id, timedelta(seconds=0.6)) as held:
        first_expiry = Preview.get_by_id(preview.id).lease_expires_at
        threading.Event().wait(0.9)  # longer than the lease: only renewal keeps it
        row = Preview.get_by_id(preview.id)
        assert row.lease_owner == held.owner
        assert row.lease_expires_at > first_expiry
        assert not held.lost
    assert Preview.get_by_id(preview.id).lease_owner is None


def test_a_lease_not_renewed_for_its_ttl_is_lost_even_if_nobody_took_it(db):
    """A worker paused, or cut off from the database, past its ttl may have been replaced: it
    stops, and renews nothing, whatever the row still says."""
    preview = want(SHA_A)
    paused = lease.Lease(preview.id, timedelta(seconds=0.3))
    assert paused.acquire()
    assert not paused.lost
    threading.Event().wait(0.4)  # no renewal meanwhile
    assert Preview.get_by_id(preview.id).lease_owner == paused.owner
    assert paused.lost
    assert paused.renew() is False


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # SQLite's clock is the process's
def test_lease_times_come_from_the_database_clock(db, monkeypatch):
    """A process whose own clock runs 90 s ahead still writes the expiry by the server's clock."""
    from datetime import datetime

    from app import db as db_module

    class Ahead(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(seconds=90)

    preview = want(SHA_A)
    monkeypatch.setattr(db_module, "datetime", Ahead)  # every utcnow() of ours is 90 s ahead now
    assert utcnow() - datetime.utcnow() > timedelta(seconds=89)
    held = lease.Lease(preview.id, timedelta(seconds=30))
    assert held.acquire()
    expiry = Preview.get_by_id(preview.id).lease_expires_at
    real = datetime.utcnow()
    assert real + timedelta(seconds=25) <= expiry <= real + timedelta(seconds=35)


def test_slots_are_claimed_exactly_and_in_line_order_by_concurrent_workers(db, settings):
    limit, contenders = 3, 12
    settings = settings.replace(max_active_previews=limit)
    ids = [want(f"{n:040x}", number=n).id for n in range(1, contenders + 1)]
    results: dict[int, int | None] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(contenders)

    def worker(preview_id):
        try:
            with database.connection_context():
                start.wait()
                results[preview_id] = capacity.claim_slot(settings, preview_id, utcnow())
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    holders = [p.id for p in Preview.active().order_by(Preview.id)]
    assert holders == ids[:limit]  # exactly the cap, and the first in line
    assert sorted(position for position in results.values() if position) == list(range(1, contenders - limit + 1))
    assert all(p.expires_at is not None for p in Preview.active())


def test_every_preview_holding_resources_gets_an_expiry_failed_ones_sooner(db, settings):
    ready, failed = want(SHA_A, number=1), want(SHA_B, number=2)
    for preview, state in ((ready, PreviewState.READY), (failed, PreviewState.FAILED)):
        Preview.change(preview.id, state=state, holds_slot=True, expires_at=None)
    now = utcnow()
    lifecycle.expire(None, settings, now)
    assert Preview.get_by_id(ready.id).expires_at == now + settings.preview_ttl
    assert Preview.get_by_id(failed.id).expires_at == now + settings.failed_preview_ttl
