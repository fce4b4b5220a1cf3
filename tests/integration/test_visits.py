"""Visits from the data plane's counters, on SQLite and PostgreSQL: a baseline first, then
each change of the count (a restart of the proxy too) is a visit, and nothing else is."""

from datetime import timedelta

import pytest

from app.db import utcnow
from app.domain.states import PreviewState
from app.models import Preview
from app.usecases.deploy.namespaces import names_for
from app.usecases.operations import visits
from app.usecases.ports import NoTraffic, TrafficUnavailable
from tests.testbed.helpers import want_pr


class Counts:
    """The data plane's answer, as the test sets it (the real one is read on the real node:
    tests/e2e/test_real_node.py)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], float] = {}

    def requests_to(self, services):
        return {service: self.counts.get(service, 0.0) for service in services}


def ready_preview(number: int) -> Preview:
    preview = want_pr(number)
    Preview.update(state=PreviewState.READY, namespace=f"preview-shop-{number}").where(
        Preview.id == preview.id
    ).execute()
    return Preview.get_by_id(preview.id)


def test_a_visit_is_a_count_that_moved_after_a_baseline(db, settings):
    seen, quiet = ready_preview(1), ready_preview(2)
    traffic = Counts()
    service = (seen.namespace, names_for(settings, seen).app)
    traffic.counts[service] = 7.0  # requests from before: a baseline, not a visit
    now = utcnow()
    assert visits.record_visits(traffic, settings, now) == []
    assert Preview.get_by_id(seen.id).requests_seen == 7.0
    assert Preview.get_by_id(quiet.id).requests_seen == 0.0

    traffic.counts[service] = 9.0
    later = now + timedelta(seconds=15)
    assert visits.record_visits(traffic, settings, later, dry_run=True) == [seen.id]
    assert Preview.get_by_id(seen.id).last_visit_at is None  # a dry run writes nothing
    assert visits.record_visits(traffic, settings, later) == [seen.id]
    assert Preview.get_by_id(seen.id).last_visit_at == later
    assert visits.record_visits(traffic, settings, later + timedelta(seconds=15)) == []
    assert Preview.get_by_id(quiet.id).last_visit_at is None


def test_a_restarted_proxy_counts_from_zero(db, settings):
    preview = ready_preview(1)
    traffic = Counts()
    service = (preview.namespace, names_for(settings, preview).app)
    traffic.counts[service] = 40.0
    now = utcnow()
    visits.record_visits(traffic, settings, now)
    traffic.counts[service] = 0.0  # restarted, nobody since
    assert visits.record_visits(traffic, settings, now + timedelta(seconds=15)) == []
    traffic.counts[service] = 2.0  # restarted, two requests since
    assert visits.record_visits(traffic, settings, now + timedelta(seconds=30)) == [preview.id]


def test_without_counters_nothing_is_concluded(db, settings):
    preview = ready_preview(1)
    with pytest.raises(TrafficUnavailable):
        visits.record_visits(NoTraffic(), settings, utcnow())
    assert Preview.get_by_id(preview.id).requests_seen is None
