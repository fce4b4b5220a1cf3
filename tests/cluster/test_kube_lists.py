"""Listing namespaces on the real control plane a page at a time (limit and continue)."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client as k8s

from app.adapters import kube as kube_adapter
from app.adapters.kube import Kube, load_configuration

pytestmark = pytest.mark.kube


def test_namespaces_are_listed_a_page_at_a_time(kube_cluster, kube_api, monkeypatch):
    core = k8s.CoreV1Api(kube_api)
    run = uuid.uuid4().hex[:8]
    names = [f"paged-{run}-{n}" for n in range(7)]
    for name in names:
        core.create_namespace({"metadata": {"name": name, "labels": {"paged": run}}})
    kube = Kube(load_configuration(str(kube_cluster.kubeconfig)))
    requests: list[dict] = []
    send = kube._send

    def counted(what, method, path, body, **options):
        requests.append(dict(options.get("query_params") or []))
        return send(what, method, path, body, **options)

    monkeypatch.setattr(kube_adapter, "NAMESPACE_PAGE", 3)
    monkeypatch.setattr(kube, "_send", counted)
    try:
        found = kube.list_namespaces(f"paged={run}")
        assert sorted(ns.name for ns in found) == names
        assert all(ns.labels == {"paged": run, "kubernetes.io/metadata.name": ns.name} for ns in found)
        assert all(ns.created_at is not None and not ns.terminating for ns in found)
        assert [query.get("limit") for query in requests] == [3, 3, 3]  # 3 + 3 + 1
        assert ["continue" in query for query in requests] == [False, True, True]
    finally:
        for name in names:
            core.delete_namespace(name)
