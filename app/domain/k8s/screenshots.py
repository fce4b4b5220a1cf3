"""The screenshot Job: headless Chromium in the preview's namespace, taking each page the
preview file names at a desktop and a phone width, from the app's Service.

It runs beside the app (the namespace's network policy lets it in; no credentials needed) in
SCREENSHOT_IMAGE, which needs `chromium`, `sh`, `base64` and `timeout` on its PATH (Debian's
chromium and coreutils). It writes each picture to its log as base64 between marker lines,
which the worker reads through the API (the rights it has for build logs already): no
volume, no way out of the namespace, nothing to upload to. The log is the output of a pod
in a stranger's namespace, so its reader trusts nothing in it (app/domain/visual_diff.py).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from app.domain.k8s.labels import LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_PREVIEW_ID, LABEL_SHA, MANAGED_BY
from app.domain.naming import SHORT_SHA

COMPONENT = "screenshots"
# name -> (width, height) of the browser window, in CSS pixels (device scale 1).
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}
SHOT, FAILED, END = "previews-shot", "previews-failed", "previews-end"
# One page's load and picture; past it the page counts as failed and the next one goes.
PAGE_SECONDS = 45
REQUESTS = {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "64Mi"}
LIMITS = {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "512Mi"}

# Chromium without its sandbox (a restricted pod may not make user namespaces; the pod is
# the sandbox), and without anything that would call out: updates, sync, metrics.
_CHROMIUM = (
    "chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars"
    " --no-first-run --no-default-browser-check --disable-background-networking --disable-sync"
    " --disable-component-update --disable-default-apps --disable-extensions --disable-crash-reporter"
    " --mute-audio --user-data-dir=/tmp/chromium"
)
# Pages are the script's arguments (never parsed by the shell); viewports come as
# name:width,height words in SHOT_VIEWPORTS.
SCRIPT = f"""set -u
index=0
for page in "$@"; do
  for viewport in $SHOT_VIEWPORTS; do
    name=${{viewport%%:*}}
    rm -f /tmp/shot.png
    if timeout {PAGE_SECONDS} {_CHROMIUM} --window-size="${{viewport#*:}}" --screenshot=/tmp/shot.png \\
        "$SHOT_BASE$page" >/dev/null 2>&1 && [ -s /tmp/shot.png ]; then
      echo "{SHOT} $index $name"
      base64 /tmp/shot.png
      echo "{END}"
    else
      echo "{FAILED} $index $name"
    fi
  done
  index=$((index + 1))
done
"""


def job_name(sha: str) -> str:
    return f"{COMPONENT}-{sha[:SHORT_SHA]}"


def screenshot_job(
    namespace: str, preview_id: int, sha: str, image: str, app_url: str, pages: tuple[str, ...], timeout_seconds: int
) -> dict[str, Any]:
    """One pod, never retried, gone ten minutes after it ends: its log is read at once."""
    job_labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PREVIEW_ID: str(preview_id),
        LABEL_COMPONENT: COMPONENT,
        LABEL_SHA: sha[:SHORT_SHA],
    }
    viewports = " ".join(f"{name}:{width},{height}" for name, (width, height) in VIEWPORTS.items())
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(sha), "namespace": namespace, "labels": job_labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": timeout_seconds,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": job_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": COMPONENT,
                            "image": image,
                            "command": ["sh", "-c", SCRIPT, "screenshots", *pages],
                            "env": [
                                {"name": "SHOT_BASE", "value": app_url.rstrip("/")},
                                {"name": "SHOT_VIEWPORTS", "value": viewports},
                                {"name": "HOME", "value": "/tmp"},
                            ],
                            "resources": {"requests": REQUESTS, "limits": LIMITS},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


@dataclass(frozen=True)
class Shot:
    page: str
    viewport: str
    png: bytes | None  # None: the page did not load or Chromium gave no picture


def read_log(log: str, pages: tuple[str, ...]) -> list[Shot]:
    """The Job's pictures, in the order taken. Lines that are not the script's own markers (or
    name a page or viewport it was not given) are ignored; a picture whose base64 does not
    decode counts as failed."""
    shots: list[Shot] = []
    current: tuple[str, str] | None = None
    chunks: list[str] = []
    for line in log.splitlines():
        words = line.split()
        if current is not None:
            if words == [END]:
                shots.append(Shot(*current, _decoded("".join(chunks))))
                current, chunks = None, []
            else:
                chunks.append(line.strip())
            continue
        if len(words) == 3 and words[0] in (SHOT, FAILED) and words[1].isdigit() and words[2] in VIEWPORTS:
            index = int(words[1])
            if index >= len(pages):
                continue
            if words[0] == FAILED:
                shots.append(Shot(pages[index], words[2], None))
            else:
                current = (pages[index], words[2])
    return shots


def _decoded(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True) or None
    except (binascii.Error, ValueError):
        return None
