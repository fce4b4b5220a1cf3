"""The test control plane behaves like a real cluster: these would fail against a mock."""

import base64
import time

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.testbed.kube.controlplane import BEHAVIOUR_LABEL
from tests.testbed.kube.waiting import eventually, namespace_gone

pytestmark = pytest.mark.kube


def deployment(name, replicas=2, labels=None, resources=None):
    pod_labels = {"app": name, **(labels or {})}
    container = {"name": "app", "image": "registry.invalid/app:1"}
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": pod_labels}, "spec": {"containers": [container]}},
        },
    }


def job(name, labels=None):
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "build", "image": "registry.invalid/builder:1"}],
                },
            },
        },
    }


def condition(obj, kind):
    return next((c for c in (obj.status.conditions or []) if c.type == kind), None)


def test_binaries_report_the_pinned_release(kube_cluster):
    assert "v1.36.3" in kube_cluster.kubectl("version", "-o", "json").stdout


def test_a_deployment_becomes_available(kube_api, kube_namespace):
    apps = client.AppsV1Api(kube_api)
    apps.create_namespaced_deployment(kube_namespace, deployment("web"))

    def available():
        d = apps.read_namespaced_deployment("web", kube_namespace)
        c = condition(d, "Available")
        return d if c and c.status == "True" and d.status.ready_replicas == 2 else None

    eventually(available, what="deployment Available")
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(kube_namespace).items
    assert len(pods) == 2
    assert all(p.spec.node_name == "kwok-node-0" and p.status.phase == "Running" for p in pods)


def test_a_pod_marked_never_ready_keeps_a_rollout_from_completing(kube_api, kube_namespace):
    apps = client.AppsV1Api(kube_api)
    apps.create_namespaced_deployment(kube_namespace, deployment("stuck", 1, {BEHAVIOUR_LABEL: "never-ready"}))
    core = client.CoreV1Api(kube_api)

    def running_pod():
        pods = core.list_namespaced_pod(kube_namespace).items
        return pods[0] if pods and pods[0].status.phase == "Running" else None

    pod = eventually(running_pod, what="pod Running")
    assert condition(pod, "Ready").status == "False"
    d = apps.read_namespaced_deployment("stuck", kube_namespace)
    assert not d.status.ready_replicas
    assert condition(d, "Available").status == "False"


def test_a_job_completes_and_a_failing_one_fails(kube_api, kube_namespace):
    batch = client.BatchV1Api(kube_api)
    batch.create_namespaced_job(kube_namespace, job("builds"))
    batch.create_namespaced_job(kube_namespace, job("breaks", {BEHAVIOUR_LABEL: "fail"}))

    def finished(name, kind):
        c = condition(batch.read_namespaced_job(name, kube_namespace), kind)
        return c if c and c.status == "True" else None

    eventually(lambda: finished("builds", "Complete"), what="job Complete")
    failed = eventually(lambda: finished("breaks", "Failed"), what="job Failed")
    assert failed.reason == "BackoffLimitExceeded"
    assert batch.read_namespaced_job("builds", kube_namespace).status.succeeded == 1


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [("image-pull", "ImagePullBackOff"), ("crash-loop", "CrashLoopBackOff"), ("oom", "CrashLoopBackOff")],
)
def test_failure_behaviours_show_kubelet_like_statuses(kube_api, kube_namespace, behaviour, reason):
    client.AppsV1Api(kube_api).create_namespaced_deployment(
        kube_namespace, deployment("broken", 1, {BEHAVIOUR_LABEL: behaviour})
    )
    core = client.CoreV1Api(kube_api)

    def waiting_pod():
        pods = core.list_namespaced_pod(kube_namespace).items
        return pods[0] if pods and pods[0].status.container_statuses else None

    status = eventually(waiting_pod, what="container status").status.container_statuses[0]
    assert status.state.waiting.reason == reason
    if behaviour == "oom":
        assert status.last_state.terminated.reason == "OOMKilled"


def test_a_resource_quota_is_enforced(kube_api, kube_namespace):
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_resource_quota(
        kube_namespace,
        {
            "metadata": {"name": "quota"},
            "spec": {"hard": {"pods": "2", "requests.cpu": "1", "requests.memory": "1Gi"}},
        },
    )
    eventually(
        lambda: core.read_namespaced_resource_quota("quota", kube_namespace).status.used, what="quota status.used"
    )
    pod = {
        "metadata": {"name": "p0"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "registry.invalid/app:1",
                    "resources": {
                        "requests": {"cpu": "400m", "memory": "256Mi"},
                        "limits": {"cpu": "400m", "memory": "256Mi"},
                    },
                }
            ]
        },
    }
    core.create_namespaced_pod(kube_namespace, pod)
    core.create_namespaced_pod(kube_namespace, {**pod, "metadata": {"name": "p1"}})
    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_pod(kube_namespace, {**pod, "metadata": {"name": "p2"}})
    assert rejected.value.status == 403
    assert "exceeded quota" in rejected.value.body
    used = eventually(
        lambda: (core.read_namespaced_resource_quota("quota", kube_namespace).status.used or {}).get("pods") == "2",
        what="quota used pods=2",
    )
    assert used


def test_a_namespace_deletion_finalizes_and_takes_its_contents(kube_api, kube_namespace):
    core = client.CoreV1Api(kube_api)
    name = f"{kube_namespace}-gone"
    core.create_namespace({"metadata": {"name": name}})
    client.AppsV1Api(kube_api).create_namespaced_deployment(name, deployment("web", 1))
    core.create_namespaced_config_map(name, {"metadata": {"name": "settings"}, "data": {"a": "b"}})
    eventually(lambda: core.list_namespaced_pod(name).items, what="pod created")
    core.delete_namespace(name)
    eventually(lambda: namespace_gone(kube_api, name), timeout=90, what="namespace finalized")
    assert core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={name}").items == []
    assert (
        client.AppsV1Api(kube_api).list_deployment_for_all_namespaces(field_selector=f"metadata.namespace={name}").items
        == []
    )


def test_a_new_namespace_gets_its_default_service_account(kube_api, kube_namespace):
    core = client.CoreV1Api(kube_api)
    names = lambda: [sa.metadata.name for sa in core.list_namespaced_service_account(kube_namespace).items]  # noqa: E731
    assert eventually(names, what="default SA") == ["default"]


def test_invalid_names_are_rejected_by_the_server(kube_api):
    core = client.CoreV1Api(kube_api)
    with pytest.raises(ApiException) as rejected:
        core.create_namespace({"metadata": {"name": "Not_A_Valid_Name"}})
    assert rejected.value.status == 422
    with pytest.raises(ApiException) as rejected:
        core.create_namespace({"metadata": {"name": "x" * 64}})
    assert rejected.value.status == 422


def test_a_service_account_without_rbac_is_refused(kube_cluster, kube_api, kube_namespace):
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_service_account(kube_namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", kube_namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    configuration = kube_cluster.client_configuration()
    configuration.cert_file = configuration.key_file = None
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(configuration) as restricted, pytest.raises(ApiException) as refused:
        client.CoreV1Api(restricted).list_namespaced_secret(kube_namespace)
    assert refused.value.status == 403
    assert f"system:serviceaccount:{kube_namespace}:nobody" in refused.value.body


def test_pod_security_labels_are_enforced(kube_api, kube_namespace):
    core = client.CoreV1Api(kube_api)
    core.patch_namespace(kube_namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(
            kube_namespace,
            {
                "metadata": {"name": "root"},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "registry.invalid/kaniko:1", "securityContext": {"privileged": True}}
                    ]
                },
            },
        )
    assert refused.value.status == 403
    assert "violates PodSecurity" in refused.value.body


def test_secrets_round_trip_through_etcd(kube_api, kube_namespace):
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_secret(
        kube_namespace, {"metadata": {"name": "s"}, "data": {"auth": base64.b64encode(b"preview:$apr1$x$y").decode()}}
    )
    assert base64.b64decode(core.read_namespaced_secret("s", kube_namespace).data["auth"]) == b"preview:$apr1$x$y"


def test_a_watch_from_a_version_the_server_no_longer_has_ends_quietly(kube_cluster, kube_namespace):
    """After an API server restart or a compaction a watch gets 410 Gone: our watches end
    their window and read the object again (a re-list), instead of failing the job."""
    from app.adapters.kube import Kube, load_configuration

    kube = Kube(load_configuration(str(kube_cluster.kubeconfig)))
    try:
        kube.core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "watched"}})
        kube_cluster.compact_etcd()
        gone = "1"  # a resourceVersion compacted away
        list_call = kube.core.list_namespaced_config_map
        started = time.monotonic()
        assert list(kube._watch_named(list_call, "watched", gone, 5, kube_namespace)) == []
        assert time.monotonic() - started < 4  # ended at the 410, not at the window's end
    finally:
        kube.close()
