"""The Helm chart that installs the service: it renders, the server accepts it, and its
RBAC is enough for the pipeline to deploy and tear down a preview."""

import subprocess

import pytest
import yaml
from kubernetes import client as k8s

from app.adapters.kube import Kube
from app.models import PreviewState
from tests.helpers import deliver, run, the_preview
from tests.kube.controlplane import binary
from tests.kube.waiting import unique_name
from tests.service_processes import ROOT

pytestmark = pytest.mark.kube
CHART = ROOT / "charts" / "gitea-previews"


@pytest.fixture
def database_url(postgres_server):
    import uuid

    return postgres_server.create_database(f"chart_{uuid.uuid4().hex[:8]}")


def render(release, namespace):
    result = subprocess.run(
        [binary("helm"), "template", release, str(CHART), "--namespace", namespace],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_the_chart_lints():
    result = subprocess.run([binary("helm"), "lint", str(CHART)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_server_accepts_every_rendered_object(kube_cluster, kube_namespace):
    rendered = subprocess.run(
        [binary("helm"), "template", "previews", str(CHART), "--namespace", kube_namespace],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    applied = kube_cluster.kubectl(
        "apply", "--dry-run=server", "-n", kube_namespace, "-f", "-", input=rendered, check=False
    )
    assert applied.returncode == 0, applied.stderr
    kinds = {line.split("/")[0] for line in applied.stdout.splitlines()}
    assert {"serviceaccount", "clusterrole.rbac.authorization.k8s.io", "deployment.apps", "service"} <= kinds


def test_the_charts_rbac_is_enough_to_deploy_and_tear_down(client, services, kube_cluster, kube_api, kube_namespace):
    release = unique_name("rbac")
    objects = [
        o
        for o in render(release, kube_namespace)
        if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
    ]
    kube_cluster.kubectl("apply", "-n", kube_namespace, "-f", "-", input=yaml.safe_dump_all(objects))
    try:
        token = (
            k8s.CoreV1Api(kube_api)
            .create_namespaced_service_account_token(release, kube_namespace, {"spec": {"expirationSeconds": 3600}})
            .status.token
        )
        configuration = kube_cluster.client_configuration()
        configuration.cert_file = configuration.key_file = None
        configuration.api_key = {"authorization": f"Bearer {token}"}
        services.kube = Kube(configuration)

        assert run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"]) == "ready"
        assert run(services, deliver(client, "pull_request_closed", "pull_request")["delivery_id"]) == "deleted"
        assert the_preview().state == PreviewState.DELETED
    finally:
        kube_cluster.kubectl("delete", "clusterrole,clusterrolebinding", release, check=False)
