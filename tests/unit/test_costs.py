"""Pricing a preview's use: quantities, a stretch inside a window, per day, the month."""

from datetime import datetime, timedelta

import pytest

from app.domain import costs

PRICES = costs.Prices(cpu_core_hour=0.04, memory_gib_hour=0.005)
NOON = datetime(2026, 12, 4, 12, 0)


def test_quantities_in_cores_and_gibibytes():
    assert costs.cores("100m") == pytest.approx(0.1)
    assert costs.cores("2") == 2.0
    assert costs.gibibytes("128Mi") == pytest.approx(0.125)
    assert costs.gibibytes("1Gi") == 1.0
    assert costs.gibibytes(str(2**30)) == 1.0


def test_a_stretch_is_priced_only_inside_the_window():
    stretch = costs.Stretch(NOON - timedelta(hours=10), NOON - timedelta(hours=2), cores=1, gib=2)
    per_hour = 0.04 + 2 * 0.005
    assert costs.cost(PRICES, [stretch], NOON - timedelta(days=1), NOON) == pytest.approx(8 * per_hour)
    assert costs.cost(PRICES, [stretch], NOON - timedelta(hours=4), NOON) == pytest.approx(2 * per_hour)
    assert costs.cost(PRICES, [stretch], NOON - timedelta(hours=2), NOON) == 0


def test_an_open_stretch_lasts_until_the_window_ends():
    stretch = costs.Stretch(NOON - timedelta(hours=3), None, cores=0.1, gib=0.125)
    assert costs.cost(PRICES, [stretch], datetime.min, NOON) == pytest.approx(3 * (0.004 + 0.000625))


def test_days_get_the_hours_a_stretch_spent_in_them():
    first_day = datetime(2026, 12, 1)
    # From 18:00 on the 1st to 06:00 on the 3rd: 6 h, 24 h, 6 h.
    stretch = costs.Stretch(datetime(2026, 12, 1, 18), datetime(2026, 12, 3, 6), cores=1, gib=0)
    days = costs.daily_costs(PRICES, [stretch], first_day, 4)
    assert days == pytest.approx([6 * 0.04, 24 * 0.04, 6 * 0.04, 0])
    assert sum(days) == pytest.approx(costs.cost(PRICES, [stretch], first_day, first_day + timedelta(days=4)))


def test_a_stretch_outside_the_days_adds_nothing():
    first_day = datetime(2026, 12, 10)
    before = costs.Stretch(datetime(2026, 12, 1), datetime(2026, 12, 10), cores=1, gib=1)
    assert costs.daily_costs(PRICES, [before], first_day, 3) == [0.0, 0.0, 0.0]


def test_budgets_count_from_the_first_of_the_month():
    assert costs.month_start(datetime(2026, 12, 4, 12, 30, 5, 7)) == datetime(2026, 12, 1)
