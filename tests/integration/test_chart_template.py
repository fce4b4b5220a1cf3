"""The Helm chart renders (helm lint, helm template): its schema refuses wrong values, and only
the processes that need it get the database admin Secret."""

import subprocess

import pytest

from tests.testbed.chart import CHART, render
from tests.testbed.kube.controlplane import binary


def test_the_chart_lints():
    result = subprocess.run([binary("helm"), "lint", str(CHART)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("option", "said"),
    [
        ("web.replica=3", "additional properties 'replica' not allowed"),
        ("env.GITEA_TOKEN=secret", "invalid propertyName 'GITEA_TOKEN'"),
        ("podSecurityLevel=privileged", "value must be one of 'baseline', 'restricted'"),
        ("image.digest=latest", "does not match pattern"),
    ],
)
def test_a_wrong_value_is_an_error_of_the_install_not_of_a_pod(option, said):
    result = subprocess.run(
        [binary("helm"), "template", "previews", str(CHART), "--set", option],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0, result.stderr
    assert said in result.stderr, result.stderr


def test_only_the_worker_and_the_scheduler_get_the_database_admin_secret():
    deployments = {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]["containers"][0]
        for doc in render("previews", "previews", "--set", "databaseAdminSecret=db-admin")
        if doc["kind"] == "Deployment"
    }
    given = {
        name: [source["secretRef"]["name"] for source in container["envFrom"]]
        for name, container in deployments.items()
    }
    assert given == {
        "previews-web": ["gitea-previews"],
        "previews-worker": ["gitea-previews", "db-admin"],
        "previews-scheduler": ["gitea-previews", "db-admin"],
        "previews-mcp": ["gitea-previews"],
    }
