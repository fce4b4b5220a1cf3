"""The real node's cluster add-ons, run as pods the way a cluster runs them: CoreDNS in
kube-system behind the kube-dns Service, and Traefik in its own namespace as the
Gateway API, Middleware and Ingress controller, reached on the node's port 80.

Both are test-bed infrastructure: Traefik gets cluster-admin rather than a role
written out here, CoreDNS only the reads it needs.
"""

from __future__ import annotations

from typing import Any

DNS_SERVICE_IP = "10.215.0.10"
TRAEFIK_NAMESPACE = "traefik"
GATEWAY = f"{TRAEFIK_NAMESPACE}/web"  # PREVIEW_GATEWAY for gateway-traefik
WEB_PORT = 8000  # Traefik's entry point in its pod; the node's port 80 leads there
METRICS_PORT = 8082  # Traefik's Prometheus entry point in its pod, the node's port of the same number
NONROOT = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

COREFILE = """.:5353 {
    errors
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        ttl 5
    }
}
"""  # no `forward`: a name outside the cluster is refused, never asked of a resolver outside


def _deployment(namespace: str, name: str, labels: dict[str, str], pod: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def coredns(image: str) -> list[dict[str, Any]]:
    labels = {"k8s-app": "kube-dns"}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "testbed:coredns"},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "pods", "namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "testbed:coredns"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "testbed:coredns"},
        "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
    }
    pod = {
        "serviceAccountName": "coredns",
        "containers": [
            {
                "name": "coredns",
                "image": image,
                "args": ["-conf", "/etc/coredns/Corefile"],
                "ports": [{"containerPort": 5353, "protocol": "UDP"}, {"containerPort": 5353, "protocol": "TCP"}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                "securityContext": NONROOT,
                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
            }
        ],
        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": "kube-system"}},
        role,
        binding,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": COREFILE},
        },
        _deployment("kube-system", "coredns", labels, pod),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 5353},
                ],
            },
        },
    ]


def traefik(image: str, node_ip: str) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "traefik"}
    args = [
        f"--entryPoints.web.address=:{WEB_PORT}",
        "--providers.kubernetesIngress=true",
        "--providers.kubernetesCRD=true",
        "--providers.kubernetesGateway=true",
        # Its request counters per Service: how the scheduler sees a preview visited.
        f"--entryPoints.metrics.address=:{METRICS_PORT}",
        "--metrics.prometheus=true",
        "--metrics.prometheus.entryPoint=metrics",
        "--ping=true",
        "--log.level=WARN",
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
    ]
    pod = {
        "serviceAccountName": "traefik",
        "containers": [
            {
                "name": "traefik",
                "image": image,
                "args": args,
                # The node's port 80, on its own address only (the portmap plugin).
                "ports": [
                    {"name": "web", "containerPort": WEB_PORT, "hostPort": 80, "hostIP": node_ip},
                    {"name": "metrics", "containerPort": METRICS_PORT, "hostPort": METRICS_PORT, "hostIP": node_ip},
                ],
                "readinessProbe": {"httpGet": {"path": "/ping", "port": 8080}, "periodSeconds": 2},
                "securityContext": NONROOT,
            }
        ],
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TRAEFIK_NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "traefik", "namespace": TRAEFIK_NAMESPACE}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "testbed:traefik"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "traefik", "namespace": TRAEFIK_NAMESPACE}],
        },
        _deployment(TRAEFIK_NAMESPACE, "traefik", labels, pod),
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "traefik"},
            "spec": {"controllerName": "traefik.io/gateway-controller"},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "web", "namespace": TRAEFIK_NAMESPACE},
            "spec": {
                "gatewayClassName": "traefik",
                "listeners": [
                    {
                        "name": "web",
                        "port": WEB_PORT,
                        "protocol": "HTTP",
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        },
    ]


STORAGE_CLASS = "testbed-local"  # DATABASE_STORAGE_CLASS for in-namespace databases


def local_volumes(folder: str, count: int) -> list[dict[str, Any]]:
    """Volumes for in-namespace databases: `count` hostPath PersistentVolumes under the node's
    folder (gone with it), bound to claims of STORAGE_CLASS as they come (no provisioner)."""
    volumes: list[dict[str, Any]] = [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": "kubernetes.io/no-provisioner",
            "reclaimPolicy": "Retain",
            "volumeBindingMode": "Immediate",
        }
    ]
    for number in range(count):
        volumes.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"testbed-local-{number}"},
                "spec": {
                    "capacity": {"storage": "2Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    "hostPath": {"path": f"{folder}/volumes/{number}", "type": "DirectoryOrCreate"},
                },
            }
        )
    return volumes
