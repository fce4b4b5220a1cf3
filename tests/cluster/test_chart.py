"""The Helm chart that installs the service: it renders, the server accepts it, and its
RBAC is enough for the pipeline to deploy and tear down a preview."""

import json
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from app.adapters.kube import Kube
from app.domain.k8s.build import build_namespace
from app.domain.states import PreviewState
from app.settings import Settings
from app.usecases.deploy import policies
from tests.testbed.chart import CHART, render
from tests.testbed.helpers import deliver, run, the_preview
from tests.testbed.kube.controlplane import binary
from tests.testbed.kube.waiting import eventually, unique_name

pytestmark = pytest.mark.kube


@pytest.fixture
def database_url(postgres_server):
    import uuid

    return postgres_server.create_database(f"chart_{uuid.uuid4().hex[:8]}")


def test_the_server_accepts_every_rendered_object(kube_cluster, kube_namespace):
    rendered = subprocess.run(
        [
            binary("helm"),
            "template",
            "previews",
            str(CHART),
            "--namespace",
            kube_namespace,
            "--set",
            f"buildNamespace={kube_namespace}",
        ],  # the objects the chart puts there, checked here too
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


def refused(call, *args, write=True):
    """The API server's refusal (403: RBAC or an admission policy) of the call; its message.

    Writes are dry runs: they pass authorization and admission like the real request, and
    leave nothing behind if they are wrongly let through.
    """
    # The API server loads each admission policy on its own, a moment after its creation: the
    # fixture waited for one of them, so a write may pass until the others are in force too.
    deadline = time.monotonic() + 15
    while True:
        try:
            call(*args, **({"dry_run": "All"} if write else {}))
        except ApiException as error:
            if error.status != 403:
                pytest.fail(f"refused with {error.status}, not 403: {error}")
            return json.loads(error.body).get("message", "")
        if not write or time.monotonic() > deadline:
            pytest.fail(f"{getattr(call, '__name__', call)} was allowed")
        time.sleep(0.2)


def test_the_charts_accounts_can_deploy_and_tear_down_a_preview(client, services, installed):
    services.settings = installed.settings_for(services.settings)
    services.kube = Kube(installed.client_as(installed.release).configuration)
    assert run(services, deliver(client, "pull_request_opened", "pull_request")["delivery_id"]) == "ready"
    preview = the_preview()

    # The web reads the password, and only that Secret, and writes nothing.
    web = installed.client_as(f"{installed.release}-web")
    web_core = k8s.CoreV1Api(web)
    assert Kube(web.configuration).read_secret_data(preview.namespace, "preview-basic-auth")["password"]
    assert web_core.list_namespaced_pod(preview.namespace).items
    refused(web_core.list_namespaced_secret, preview.namespace, write=False)
    refused(web_core.read_namespaced_secret, "preview-basic-auth", "default", write=False)
    refused(web_core.create_namespaced_config_map, preview.namespace, {"metadata": {"name": "x"}})

    assert run(services, deliver(client, "pull_request_closed", "pull_request")["delivery_id"]) == "deleted"
    assert the_preview().state == PreviewState.DELETED


SECRET_OBJECT = {"metadata": {"name": "stolen"}, "stringData": {"a": "b"}}
POD_OBJECT = {"metadata": {"name": "shell"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
JOB_OBJECT = {
    "metadata": {"name": "job"},
    "spec": {"template": {"spec": {**POD_OBJECT["spec"], "restartPolicy": "Never"}}},
}


@pytest.mark.parametrize("namespace", ["default", "kube-system"])
def test_the_worker_account_cannot_touch_other_namespaces(installed, kube_api, namespace):
    worker = installed.client_as(installed.release)
    core, batch, rbac = k8s.CoreV1Api(worker), k8s.BatchV1Api(worker), k8s.RbacAuthorizationV1Api(worker)
    refused(core.create_namespaced_secret, namespace, SECRET_OBJECT)
    refused(core.create_namespaced_pod, namespace, POD_OBJECT)
    refused(batch.create_namespaced_job, namespace, JOB_OBJECT)
    refused(core.list_namespaced_secret, namespace, write=False)
    # RBAC lets it bind its preview role anywhere; the admission policy keeps that inside our namespaces.
    assert "namespaces labelled app.kubernetes.io/managed-by=gitea-previews" in refused(
        rbac.create_namespaced_role_binding, namespace, binding_to(installed)
    )
    # Nor can it make a namespace look like ours.
    label = {"metadata": {"labels": {"app.kubernetes.io/managed-by": "gitea-previews"}}}
    assert "only namespaces labelled" in refused(core.patch_namespace, namespace, label)


def test_the_worker_account_binds_no_other_role_and_creates_or_deletes_no_foreign_namespace(installed, kube_api):
    worker = installed.client_as(installed.release)
    core, rbac = k8s.CoreV1Api(worker), k8s.RbacAuthorizationV1Api(worker)
    refused(
        rbac.create_namespaced_role_binding, installed.build_namespace, binding_to(installed, "cluster-admin")
    )  # a namespace of ours
    assert "creates only preview-" in refused(core.create_namespace, {"metadata": {"name": unique_name("not-ours")}})
    unlabelled = unique_name("someone-elses")
    k8s.CoreV1Api(kube_api).create_namespace({"metadata": {"name": unlabelled}})
    try:
        assert "only namespaces labelled" in refused(core.delete_namespace, unlabelled)
    finally:
        k8s.CoreV1Api(kube_api).delete_namespace(unlabelled)
    # What it may do: read and write Jobs in the build namespace, read no Secret outside it.
    assert k8s.BatchV1Api(worker).list_namespaced_job(installed.build_namespace).items == []
    refused(core.read_namespaced_secret, "anything", installed.namespace, write=False)


def test_the_worker_account_cannot_weaken_a_preview_namespace_or_bind_its_role_to_another_account(installed, kube_api):
    worker = installed.client_as(installed.release)
    core, rbac = k8s.CoreV1Api(worker), k8s.RbacAuthorizationV1Api(worker)
    name = unique_name("preview-vap")
    ours = {"app.kubernetes.io/managed-by": "gitea-previews"}
    # A new preview namespace without a level, or with another one: refused.
    assert "pod-security.kubernetes.io/enforce=baseline" in refused(
        core.create_namespace, {"metadata": {"name": name, "labels": ours}}
    )
    privileged = {**ours, "pod-security.kubernetes.io/enforce": "privileged"}
    refused(core.create_namespace, {"metadata": {"name": name, "labels": privileged}})
    core.create_namespace(
        {"metadata": {"name": name, "labels": {**ours, "pod-security.kubernetes.io/enforce": "baseline"}}}
    )
    try:
        # Relabelled privileged afterwards: refused.
        relabel = {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}
        assert "never another level" in refused(core.patch_namespace, name, relabel)
        # Its preview role bound to the namespace's default account (every pod there): refused.
        to_default = binding_to(installed)
        to_default["subjects"] = [{"kind": "ServiceAccount", "name": "default", "namespace": name}]
        assert "each to its own ServiceAccount" in refused(rbac.create_namespaced_role_binding, name, to_default)
        # The web's account with the worker's role: refused. The worker's own binding: allowed.
        crossed = binding_to(installed)
        crossed["subjects"][0]["name"] = f"{installed.release}-web"
        refused(rbac.create_namespaced_role_binding, name, crossed)
        rbac.create_namespaced_role_binding(name, binding_to(installed), dry_run="All")
    finally:
        k8s.CoreV1Api(kube_api).delete_namespace(name)


def test_the_worker_keeps_its_build_namespace_as_helm_labelled_it_and_never_deletes_it(installed):
    """Helm marks the build namespace `app.kubernetes.io/managed-by: Helm` (its ownership): the
    worker's own apply of that namespace passes the admission policies without taking the
    label over, and it may neither change that label nor delete the namespace."""
    as_worker = Kube(installed.configuration_as(installed.release))
    core = as_worker.core
    stored = as_worker.apply(build_namespace(policies.build(Settings(build_namespace=installed.build_namespace))))
    assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    relabel = {"metadata": {"labels": {"app.kubernetes.io/managed-by": "gitea-previews"}}}
    assert "never removes or changes the managed-by label" in refused(
        core.patch_namespace, installed.build_namespace, relabel
    )
    assert "never deletes it" in refused(core.delete_namespace, installed.build_namespace)
    as_worker.close()
