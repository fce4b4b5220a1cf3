"""Small helpers that build test inputs: sample payloads and signed webhook requests."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

from app.domain.signature import sign

PAYLOADS = Path(__file__).resolve().parents[1] / "payloads"
SECRET = "test-webhook-secret"

EVENT_TYPES = {
    "push": ("push", "push"),
    "pull_request": ("pull_request", "pull_request"),
    "pull_request_sync": ("pull_request", "pull_request_sync"),
    "pull_request_label": ("pull_request", "pull_request_label"),
    "issue_comment": ("issue_comment", "issue_comment"),
    "pull_request_comment": ("issue_comment", "pull_request_comment"),
    "release": ("release", "release"),
    "delete": ("delete", "delete"),
}


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def with_changes(body: dict[str, Any], **paths: Any) -> dict[str, Any]:
    """A copy of `body` with dotted paths set, e.g. with_changes(p, **{"pull_request.head.sha": s})."""
    body = copy.deepcopy(body)
    for path, value in paths.items():
        node = body
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return body


def webhook_request(
    body: dict[str, Any] | bytes, kind: str, secret: str | None = SECRET, delivery: str | None = None
) -> dict[str, Any]:
    """Keyword arguments for a Flask test client (or requests) POST, signed like Gitea does."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    event, event_type = EVENT_TYPES[kind]
    headers = {
        "Content-Type": "application/json",
        "X-Gitea-Delivery": delivery or str(uuid.uuid4()),
        "X-Gitea-Event": event,
        "X-Gitea-Event-Type": event_type,
    }
    if secret is not None:
        headers["X-Gitea-Signature"] = sign(secret, raw)
    return {"data": raw, "headers": headers}
