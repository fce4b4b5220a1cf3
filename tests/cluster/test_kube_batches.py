"""The adapter's batch apply and namespace check, on the real control plane."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from kubernetes import client as k8s

from app.adapters.kube import Kube, load_configuration
from app.usecases.ports import KubeError

pytestmark = pytest.mark.kube


def secret(namespace: str, name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}}


@pytest.fixture
def kube(kube_cluster):
    adapter = Kube(load_configuration(str(kube_cluster.kubeconfig)))
    yield adapter
    adapter.close()


@pytest.fixture
def namespace(kube_api):
    core = k8s.CoreV1Api(kube_api)
    name = f"batch-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"batch": "yes"}}})
    yield name
    core.delete_namespace(name)


def test_a_batch_is_applied_and_returned_in_order(kube, kube_api, namespace):
    names = [f"s{n}" for n in range(6)]
    stored = kube.apply_all([secret(namespace, name) for name in names])
    assert [obj["metadata"]["name"] for obj in stored] == names
    assert all(obj["metadata"]["resourceVersion"] for obj in stored)
    listed = k8s.CoreV1Api(kube_api).list_namespaced_secret(namespace).items
    assert sorted(secret.metadata.name for secret in listed) == names


def test_a_refused_object_fails_the_batch_after_the_others_are_applied(kube, kube_api, namespace):
    objects = [secret(namespace, "first"), secret(namespace, "Not_A_Name"), secret(namespace, "last")]
    with pytest.raises(KubeError) as refused:
        kube.apply_all(objects)
    assert "Not_A_Name" in str(refused.value)
    listed = k8s.CoreV1Api(kube_api).list_namespaced_secret(namespace).items
    assert sorted(secret.metadata.name for secret in listed) == ["first", "last"]


def test_settled_labels_of_a_missing_and_a_present_namespace(kube, namespace):
    assert kube.settled_namespace_labels(f"absent-{uuid.uuid4().hex[:8]}", timeout=5) is None
    labels = kube.settled_namespace_labels(namespace, timeout=5)
    assert labels == {"batch": "yes", "kubernetes.io/metadata.name": namespace}


def test_a_namespace_being_deleted_is_waited_for_until_it_is_gone(kube, kube_api):
    core = k8s.CoreV1Api(kube_api)
    name = f"going-{uuid.uuid4().hex[:8]}"
    # A finalizer of our own holds the namespace in Terminating until the thread below lifts it.
    core.create_namespace({"metadata": {"name": name, "finalizers": ["previews.test/hold"]}})
    core.delete_namespace(name)
    assert core.read_namespace(name).metadata.deletion_timestamp is not None

    def release() -> None:
        time.sleep(1.5)
        core.patch_namespace(name, {"metadata": {"finalizers": None}})

    releaser = threading.Thread(target=release)
    started = time.monotonic()
    releaser.start()
    try:
        assert kube.settled_namespace_labels(name, timeout=60) is None
        assert time.monotonic() - started >= 1.5
    finally:
        releaser.join()
