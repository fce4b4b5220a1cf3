"""The way a sleeping preview's visitors reach the wake page: an EndpointSlice of ours that
adds the service's web to the app Service's endpoints.

The route, and so the preview's password in front of it, stays as it is: the proxy keeps
sending the preview's host to the app Service, whose own pods are scaled to zero; its
endpoints are then only this slice's. Kubernetes' EndpointSlice controller leaves slices it
does not manage alone (their `managed-by` label), and proxies read every slice labelled with
the Service's name."""

from __future__ import annotations

from typing import Any

from app.domain.k8s.labels import LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_PREVIEW_ID, MANAGED_BY

WAKE_SLICE = "preview-wake"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SLICE_MANAGER_LABEL = "endpointslice.kubernetes.io/managed-by"
# The app Service's port name (app/domain/k8s/workload.py): a slice's port is matched by name.
APP_PORT_NAME = "http"
# Stored on a workload put to sleep: the replicas it goes back to on waking.
AWAKE_REPLICAS = "previews.gitea.io/awake-replicas"


def wake_slice(namespace: str, service: str, preview_id: int, address: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": WAKE_SLICE,
            "namespace": namespace,
            "labels": {
                SERVICE_NAME_LABEL: service,
                SLICE_MANAGER_LABEL: MANAGED_BY,
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_PREVIEW_ID: str(preview_id),
                LABEL_COMPONENT: "wake",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": APP_PORT_NAME, "port": port, "protocol": "TCP"}],
    }
