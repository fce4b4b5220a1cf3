"""What previews spend and the budgets that hold new ones back, on SQLite and PostgreSQL."""

import dataclasses
from datetime import timedelta

import pytest

from app.adapters.jobqueue import JobQueue
from app.db import utcnow
from app.domain import costs
from app.domain.states import PreviewState
from app.models import Preview, PreviewUsage, Repository
from app.usecases.deploy import budgets, capacity, usage
from app.usecases.errors import Invalid, NotFound
from app.usecases.operations import board
from tests.testbed.helpers import want_pr

PER_HOUR = 0.04 * costs.APP_CORES + 0.005 * costs.APP_GIB


def running(settings, number, hours_ago, now=None):
    """A preview that took its slot `hours_ago` hours before `now`."""
    preview = want_pr(number)
    assert capacity.claim_slot(settings, preview.id, (now or utcnow()) - timedelta(hours=hours_ago)) is None
    return Preview.get_by_id(preview.id)


def test_a_preview_spends_from_its_slot_until_its_teardown(db, settings):
    preview = running(settings, 1, hours_ago=10)
    now = utcnow()
    assert usage.cost_by_preview(settings, [preview.id], now)[preview.id] == pytest.approx(10 * PER_HOUR, rel=1e-3)
    assert usage.cost_of(settings, preview.id, now).per_hour == pytest.approx(PER_HOUR)

    # Torn down four hours ago (what teardown and the stale-slot step do): it spends no more.
    Preview.update(state=PreviewState.DELETED).where(Preview.id == preview.id).execute()
    assert capacity.free_stale_slots(now - timedelta(hours=4)) == [preview.id]
    later = now + timedelta(hours=5)
    assert usage.cost_by_preview(settings, [preview.id], later)[preview.id] == pytest.approx(6 * PER_HOUR, rel=1e-3)
    assert usage.cost_of(settings, preview.id, later).per_hour == 0


def test_a_stray_stretch_ends_when_its_preview_last_changed(db, settings):
    preview = running(settings, 1, hours_ago=3)
    changed = utcnow() - timedelta(hours=1)
    # An older release freed the slot without ending the stretch.
    Preview.update(holds_slot=False, updated_at=changed).where(Preview.id == preview.id).execute()
    now = utcnow()
    assert usage.settle(now, dry_run=True) == [preview.id]
    assert PreviewUsage.get().ended_at is None
    assert usage.settle(now) == [preview.id]
    assert PreviewUsage.get().ended_at == changed
    assert usage.settle(now) == []


def test_a_slot_without_a_stretch_gets_one_and_spends_from_then(db, settings):
    preview = running(settings, 1, hours_ago=3)
    PreviewUsage.delete().execute()  # a process died between taking the slot and its stretch
    now = utcnow()
    assert usage.settle(now) == [preview.id]
    assert usage.cost_of(settings, preview.id, now + timedelta(hours=2)).so_far == pytest.approx(2 * PER_HOUR)
    assert usage.settle(now) == []


def test_a_late_stop_leaves_the_stretch_of_a_preview_that_took_a_slot_again(db, settings):
    preview = running(settings, 1, hours_ago=3)
    # The stale-slot step read the preview as deleted; before it ended the stretches, the PR
    # came back and took a slot again: its new stretch must stay open.
    usage.stop([preview.id], utcnow())
    assert usage.cost_of(settings, preview.id, utcnow()).per_hour == pytest.approx(PER_HOUR)
    Preview.update(holds_slot=False).where(Preview.id == preview.id).execute()
    usage.stop([preview.id], utcnow())
    assert usage.cost_of(settings, preview.id, utcnow()).per_hour == 0


def test_spend_per_repository_and_per_day(db, settings):
    running(settings, 1, hours_ago=30)
    running(settings, 2, hours_ago=2)
    repository = Repository.named("acme/shop")
    now = utcnow()
    spent = usage.spent_by_repository(settings, now - timedelta(hours=24), now, [repository.id])
    assert spent[repository.id] == pytest.approx(26 * PER_HOUR, rel=1e-3)
    first_day, daily = usage.daily_by_repository(settings, [repository.id], 30, now)
    assert first_day == now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=29)
    assert len(daily[repository.id]) == 30
    assert sum(daily[repository.id]) == pytest.approx(32 * PER_HOUR, rel=1e-3)


def test_the_stats_page_shows_each_repositorys_spend_against_its_budget(db, settings):
    running(settings, 1, hours_ago=5)
    budgets.set_budget("acme/shop", 12.5)
    figures = board.stats_for(settings, ["acme/shop"], utcnow())
    (shop,) = figures["spend"]
    assert (shop["repository"], shop["budget"]) == ("acme/shop", 12.5)
    assert shop["total"] == pytest.approx(5 * PER_HOUR, rel=1e-2)
    assert figures["per_hour"] == pytest.approx(PER_HOUR, abs=1e-4)  # rounded to 4 places
    chart = board.spend_chart(figures["spend"], figures["first_day"])
    tallest = max(chart["rows"][0]["columns"], key=lambda column: column["value"])
    assert tallest["height"] == chart["bar"]


def test_over_its_budget_a_repository_holds_new_previews_back(db, settings):
    capped = dataclasses.replace(settings, budget_per_repository=5 * PER_HOUR)
    now = utcnow().replace(day=15, hour=12, minute=0, second=0, microsecond=0)  # mid-month, whatever today is
    old = running(capped, 1, hours_ago=6, now=now)  # spent 6 hours' worth this month: over
    new = Preview.get_by_id(want_pr(2).id)
    why = budgets.hold_back(capped, new, now)
    assert why is not None
    assert "acme/shop spent" in why
    assert "budget this month" in why
    held = Preview.get_by_id(new.id)
    assert held.budget_held_since is not None
    assert held.waiting_since is not None
    # Out of the line for a slot, and not stuck (even without a cap, where being in line for a
    # slot would not excuse it): it waits for its budget.
    assert new.id not in [p.id for p in Preview.waiting()]
    later = max(now, utcnow()) + timedelta(hours=1)
    assert new.id not in [p.id for p in Preview.stuck(later, later, capped=False)]
    # A preview that holds its slot already keeps taking commits.
    assert budgets.hold_back(capped, Preview.get_by_id(old.id), now) is None

    queue = JobQueue(settings.redis_url, settings.queue_name)
    assert budgets.release(queue, capped, now) == []
    budgets.set_budget("acme/shop", 10 * PER_HOUR)  # the operator raises it
    assert budgets.release(queue, capped, now, dry_run=True) == [new.id]
    assert queue.job_ids == []
    assert budgets.release(queue, capped, now) == [new.id]
    assert [job for job in queue.job_ids if job.startswith(f"deploy-{new.id}-")]
    # Its deploy looks again, finds room, and it is back in line for a slot.
    assert budgets.hold_back(capped, held, now) is None
    assert Preview.get_by_id(new.id).budget_held_since is None
    assert new.id in [p.id for p in Preview.waiting()]


def test_without_a_budget_nothing_is_held(db, settings):
    running(settings, 1, hours_ago=1000)
    new = Preview.get_by_id(want_pr(2).id)
    assert budgets.hold_back(settings, new, utcnow()) is None


def test_a_budget_is_set_for_a_known_repository_only(db, settings):
    want_pr(1)
    with pytest.raises(NotFound):
        budgets.set_budget("acme/other", 3.0)
    with pytest.raises(Invalid):
        budgets.set_budget("acme/shop", -1.0)
    assert budgets.set_budget("ACME/Shop", 3.0).monthly_budget == 3.0
    assert budgets.budget_of(settings, Repository.named("acme/shop")) == 3.0
    assert budgets.set_budget("acme/shop", None).monthly_budget is None
    assert (
        budgets.budget_of(dataclasses.replace(settings, budget_per_repository=7.0), Repository.named("acme/shop"))
        == 7.0
    )


def test_the_operator_sets_and_resets_a_budget_from_the_command_line(app, db, settings):
    want_pr(1)
    runner = app.test_cli_runner()
    done = runner.invoke(args=["repos", "budget", "acme/shop", "25"])
    assert done.exit_code == 0, done.output
    assert "acme/shop: budget 25.00 USD a month" in done.output
    assert Repository.named("acme/shop").monthly_budget == 25.0
    assert runner.invoke(args=["repos", "budget", "acme/shop", "plenty"]).exit_code == 2
    assert runner.invoke(args=["repos", "budget", "acme/shop", "-1"]).exit_code != 0
    assert runner.invoke(args=["repos", "budget", "acme/gone", "5"]).exit_code != 0
    assert Repository.named("acme/shop").monthly_budget == 25.0  # bad input changed nothing
    reset = runner.invoke(args=["repos", "budget", "acme/shop", "default"])
    assert "acme/shop: budget none" in reset.output
    assert Repository.named("acme/shop").monthly_budget is None
