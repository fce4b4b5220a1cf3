"""Which previews are visited: each scheduler pass reads the data plane's request count for
every ready preview's app and notes when it moved (what sleeping idle previews will go by).

The first count read for a preview is only a baseline: the requests behind it may be old. A
count that went down means the proxy restarted: whatever it counted since is new."""

from __future__ import annotations

from datetime import datetime

from app.domain.states import PreviewState
from app.models import Preview
from app.settings import Settings
from app.usecases.deploy.namespaces import names_for
from app.usecases.ports import Traffic


def record_visits(traffic: Traffic, settings: Settings, now: datetime, dry_run: bool = False) -> list[int]:
    """Read the counts (TrafficUnavailable: nothing is written) and return the previews visited
    since the last pass."""
    ready = list(Preview.select().where((Preview.state == PreviewState.READY) & Preview.namespace.is_null(False)))
    services = {preview.id: (preview.namespace, names_for(settings, preview).app) for preview in ready}
    counts = traffic.requests_to(sorted(set(services.values())))
    visited = []
    for preview in ready:
        count = counts.get(services[preview.id], 0.0)
        if count == preview.requests_seen:
            continue
        # Changed: grew, or the proxy restarted and counted some since.
        moved = preview.requests_seen is not None and count > 0
        if moved:
            visited.append(preview.id)
        if not dry_run:
            fields = {"requests_seen": count, **({"last_visit_at": now} if moved else {})}
            Preview.update(**fields).where(Preview.id == preview.id).execute()
    return visited
