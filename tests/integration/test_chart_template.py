"""The Helm chart renders (helm lint, helm template): its schema refuses wrong values, and only
the processes that need it get the database admin Secret."""

import subprocess
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.testbed.kube.controlplane import binary
from tests.testbed.kube.waiting import eventually, unique_name
from tests.testbed.service_processes import ROOT

CHART = ROOT / "charts" / "gitea-previews"


def render(release, namespace, *options):
    result = subprocess.run(
        [binary("helm"), "template", release, str(CHART), "--namespace", namespace, *options],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


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


ACCESS_KINDS = {
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Namespace",
    "Role",
    "RoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


@dataclass
class Installed:
    release: str
    namespace: str
    build_namespace: str
    cluster: Any

    def token(self, account):
        core = k8s.CoreV1Api(self.cluster.api_client())
        request = {"spec": {"expirationSeconds": 3600}}
        return core.create_namespaced_service_account_token(account, self.namespace, request).status.token

    def configuration_as(self, account):
        """Client settings that authenticate as the chart's ServiceAccount `account`, and nothing else."""
        configuration = self.cluster.client_configuration()
        configuration.cert_file = configuration.key_file = None
        configuration.api_key = {"authorization": f"Bearer {self.token(account)}"}
        return configuration

    def client_as(self, account):
        return k8s.ApiClient(self.configuration_as(account))

    def settings_for(self, settings):
        return settings.replace(
            build_namespace=self.build_namespace,
            controller_service_account=f"{self.namespace}/{self.release}",
            preview_cluster_role=f"{self.release}-preview",
            web_service_account=f"{self.namespace}/{self.release}-web",
            preview_reader_cluster_role=f"{self.release}-preview-reader",
        )


@pytest.fixture
def installed(kube_cluster, kube_namespace):
    """The chart's accounts, roles, build namespace and admission policies, as Helm would install them."""
    release, build_namespace = unique_name("rbac"), unique_name("builds")
    objects = [
        o
        for o in render(release, kube_namespace, "--set", f"buildNamespace={build_namespace}")
        if o["kind"] in ACCESS_KINDS
    ]
    for obj in objects:
        if obj["kind"] == "ServiceAccount":
            obj["metadata"]["namespace"] = kube_namespace  # Helm puts them in the release's namespace
    kube_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    installed = Installed(release, kube_namespace, build_namespace, kube_cluster)
    try:
        # The API server loads admission policies a moment after they are created.
        worker_rbac = k8s.RbacAuthorizationV1Api(installed.client_as(release))
        eventually(
            lambda: _refused_now(worker_rbac.create_namespaced_role_binding, kube_namespace, binding_to(installed)),
            what="the admission policies in force",
        )
        yield installed
    finally:
        for kind in (
            "clusterrole",
            "clusterrolebinding",
            "validatingadmissionpolicy",
            "validatingadmissionpolicybinding",
        ):
            names = [o["metadata"]["name"] for o in objects if o["kind"].lower() == kind]
            kube_cluster.kubectl("delete", kind, *names, "--ignore-not-found", check=False)
        kube_cluster.kubectl("delete", "namespace", build_namespace, "--wait=false", check=False)


def binding_to(installed, role=None, name="sneaky"):
    return {
        "metadata": {"name": name},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role or f"{installed.release}-preview",
        },
        "subjects": [{"kind": "ServiceAccount", "name": installed.release, "namespace": installed.namespace}],
    }


def _refused_now(call, *args):
    try:
        call(*args, dry_run="All")
    except ApiException as error:
        return error.status == 403
    return False
