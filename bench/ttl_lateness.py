"""TTL lateness: how long after its expiry a preview's teardown is requested.

`--previews` PRs (default 20) in a repository whose preview file says `ttl: 1m`, on
the real test bed with the production scheduler interval (15 s unless
SCHEDULER_INTERVAL is set). Each namespace is watched (polled every 0.5 s) from the
moment its preview is ready; lateness is the time from the preview's `expires_at`
(the service's record) to its namespace's deletion being requested. Prints the max
(target < 60 s) and p50, beside the scheduler interval, the bound one expects.

    .venv/bin/python -m bench.ttl_lateness [--previews 20]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from app.db import open_database
from app.domain.states import PreviewState
from app.models import Preview
from bench.stack import IMAGE, preview_stack, report, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--previews", type=int, default=20)
    args = parser.parse_args()
    with preview_stack(workers=2) as stack:
        open_database(stack.env["DATABASE_URL"])
        repo = stack.repository("ttl", f"image: {IMAGE}\nport: 8080\nttl: 1m\n")
        for number in range(args.previews):
            repo.commit(f"short-{number}", {"change.txt": f"{number}\n"}, f"Short-lived {number}")
            repo.git("checkout", "main")
            repo.open_pr(f"short-{number}", f"Short-lived {number}")

        lateness: dict[str, float] = {}
        expiry: dict[str, datetime] = {}
        deadline = time.monotonic() + 300
        while len(lateness) < args.previews and time.monotonic() < deadline:
            for preview in Preview.select().where(Preview.namespace.is_null(False) & Preview.expires_at.is_null(False)):
                if preview.state in (PreviewState.READY, PreviewState.DELETING, PreviewState.DELETED):
                    expiry.setdefault(preview.namespace, preview.expires_at)
            seen_at = datetime.now(UTC).replace(tzinfo=None)
            for name, expires_at in expiry.items():
                if name in lateness:
                    continue
                namespace = stack.namespace(name)
                if namespace is None or namespace.metadata is None or namespace.metadata.deletion_timestamp is not None:
                    lateness[name] = (seen_at - expires_at).total_seconds()
            time.sleep(0.5)
        if len(lateness) < args.previews:
            raise SystemExit(f"only {len(lateness)} of {args.previews} previews were torn down within 5 minutes")
        interval = stack.env.get("SCHEDULER_INTERVAL", "15s")
    figures = summary(list(lateness.values()))
    report(
        "ttl_lateness",
        {"previews": len(lateness), "ttl": "1m", "scheduler_interval": interval, "lateness_s": figures},
    )


if __name__ == "__main__":
    main()
