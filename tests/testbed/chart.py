"""The service's Helm chart as `helm template` renders it, for the chart's specs."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml

from tests.testbed.kube.controlplane import binary
from tests.testbed.service_processes import ROOT

CHART = ROOT / "charts" / "gitea-previews"


def render(release: str, namespace: str, *options: str) -> list[dict[str, Any]]:
    """The chart's objects for `release` in `namespace`, with helm's `options` (--set ...)."""
    result = subprocess.run(
        [binary("helm"), "template", release, str(CHART), "--namespace", namespace, *options],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
