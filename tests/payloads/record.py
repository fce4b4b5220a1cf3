"""Record real webhook deliveries from the test Gitea into tests/payloads/gitea-1.26/.

    .venv/bin/python -m tests.payloads.record

Starts the Gitea built by tests/tools/build.sh, points a repository's webhook
at a small capturing HTTP server on loopback, then pushes a task branch, opens,
synchronizes, labels, closes, reopens and merges a pull request and deletes a
branch. Each body is saved with the event headers it came with (the signature
is left out: it depends on the secret of that run).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.testbed.gitea_repo import create_repository
from tests.testbed.gitea_server import gitea_server

OUT = Path(__file__).parent / "gitea-1.26"
received: list[dict] = []


class Capture(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received.append(
            {
                "headers": {k: self.headers[k] for k in ("X-Gitea-Event", "X-Gitea-Event-Type")},
                "body": json.loads(body),
            }
        )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def wait_for(count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(received) < count and time.monotonic() < deadline:
        time.sleep(0.1)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with gitea_server() as gitea, tempfile.TemporaryDirectory() as folder:
        repo = create_repository(
            gitea,
            "shop",
            Path(folder) / "work",
            webhook_url=f"http://127.0.0.1:{server.server_port}/",
            secret="recording",
        )
        steps = [
            lambda: repo.commit("task/login-form", {"login.txt": "1"}, "Add login form"),
            lambda: repo.delete_branch("task/login-form"),
            lambda: repo.commit("feature/login", {"a.txt": "1"}, "Feature"),
            lambda: repo.open_pr("feature/login", "Add login"),
            lambda: repo.commit("feature/login", {"a.txt": "2"}, "Fix"),
            lambda: repo.close_pr(1),
            lambda: repo.reopen_pr(1),
            lambda: repo.merge_pr(1),
        ]
        for step in steps:
            before = len(received)
            step()
            wait_for(before + 1)
            time.sleep(1)  # let any second event of the same action arrive
    server.shutdown()
    OUT.mkdir(exist_ok=True)
    names: dict[str, int] = {}
    for delivery in received:
        event_type = delivery["headers"]["X-Gitea-Event-Type"]
        action = delivery["body"].get("action") or delivery["body"].get("ref_type") or ""
        name = "_".join(part for part in (event_type, action) if part)
        names[name] = names.get(name, 0) + 1
        suffix = f"_{names[name]}" if names[name] > 1 else ""
        (OUT / f"{name}{suffix}.json").write_text(json.dumps(delivery, indent=2, sort_keys=True) + "\n")
    print(f"recorded {len(received)} deliveries into {OUT}")


if __name__ == "__main__":
    main()
