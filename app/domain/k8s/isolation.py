"""What keeps a preview to itself: its namespace (PodSecurity level), the service's own rights
there, the quota and default limits, and the network policy. Applied before anything runs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from app.domain.k8s.labels import PREFIX, PreviewSpec, labels, object_meta, timestamp
from app.domain.k8s.workload import APP_LIMITS, APP_REQUESTS, EPHEMERAL_LIMIT, EPHEMERAL_REQUEST


@dataclass(frozen=True)
class Opening:
    """An exception to the denied ranges: these addresses, on these TCP ports only."""

    cidrs: tuple[str, ...]
    ports: tuple[int, ...]


@dataclass(frozen=True)
class Binding:
    """One of the service's accounts, bound to a ClusterRole in the preview's namespace."""

    name: str
    cluster_role: str
    service_account: str  # namespace/name


@dataclass(frozen=True)
class IsolationPolicy:
    pod_security_level: str  # PodSecurity's enforce (and warn) level for preview namespaces
    bindings: tuple[Binding, ...]  # the service's rights in each preview namespace
    quota: dict[str, str]  # the ResourceQuota's hard limits
    denied_cidrs: tuple[str, ...]  # never reachable from a preview (metadata, cluster, API server)
    ingress_namespace: str  # the ingress controller's namespace: the only way in from outside


def namespace(spec: PreviewSpec, policy: IsolationPolicy) -> dict[str, Any]:
    annotations = {
        "created-at": timestamp(spec.created_at),
        "ttl": f"{int(spec.ttl.total_seconds())}s",
        "expires-at": timestamp(spec.expires_at),
        f"{PREFIX}/repository": spec.repository,
        f"{PREFIX}/branch": spec.branch,
        f"{PREFIX}/head-sha": spec.head_sha,
    }
    if spec.pr_url:
        annotations[f"{PREFIX}/pr-url"] = spec.pr_url
    level = policy.pod_security_level
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": spec.names.namespace,
            "labels": {
                **labels(spec),
                "pod-security.kubernetes.io/enforce": level,
                "pod-security.kubernetes.io/warn": level,
            },
            "annotations": annotations,
        },
    }


def role_bindings(spec: PreviewSpec, policy: IsolationPolicy) -> list[dict[str, Any]]:
    """The service's own rights in this namespace: its worker's (to make the preview) and its
    web's (to read the password and the pods). Granted here and nowhere else."""
    bindings = []
    for binding in policy.bindings:
        account_namespace, _, account_name = binding.service_account.partition("/")
        bindings.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": binding.name, "namespace": spec.names.namespace, "labels": labels(spec)},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": binding.cluster_role,
                },
                "subjects": [{"kind": "ServiceAccount", "name": account_name, "namespace": account_namespace}],
            }
        )
    return bindings


def resource_quota(spec: PreviewSpec, policy: IsolationPolicy) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": object_meta(spec, "preview-quota"),
        "spec": {"hard": dict(policy.quota)},
    }


def limit_range(spec: PreviewSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": object_meta(spec, "preview-limits"),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "defaultRequest": {**APP_REQUESTS, **EPHEMERAL_REQUEST},
                    "default": {**APP_LIMITS, **EPHEMERAL_LIMIT},
                }
            ]
        },
    }


def egress_rules(denied_cidrs: tuple[str, ...], opening: Opening | None = None) -> list[dict[str, Any]]:
    """DNS, the namespace itself and the internet; not the denied ranges (metadata addresses, cluster,
    API server), except `opening`'s addresses on its ports."""
    anywhere = []
    for everything in ("0.0.0.0/0", "::/0"):
        version = ipaddress.ip_network(everything).version
        denied = [c for c in denied_cidrs if ipaddress.ip_network(c).version == version]
        anywhere.append({"ipBlock": {"cidr": everything, "except": denied} if denied else {"cidr": everything}})
    rules: list[dict[str, Any]] = [
        {
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        {"to": [{"podSelector": {}}]},
        {"to": anywhere},
    ]
    if opening is not None and opening.cidrs and opening.ports:
        rules.append(
            {
                "to": [{"ipBlock": {"cidr": cidr}} for cidr in opening.cidrs],
                "ports": [{"protocol": "TCP", "port": port} for port in opening.ports],
            }
        )
    return rules


def network_policy(spec: PreviewSpec, policy: IsolationPolicy, opening: Opening | None = None) -> dict[str, Any]:
    """Admit traffic only from this namespace and from the ingress controller's; let out only
    what egress_rules says (and `opening`: a shared database server's port)."""
    ingress_controller = {"matchLabels": {"kubernetes.io/metadata.name": policy.ingress_namespace}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_meta(spec, "preview-isolation"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "egress": egress_rules(policy.denied_cidrs, opening),
            "ingress": [{"from": [{"podSelector": {}}, {"namespaceSelector": ingress_controller}]}],
        },
    }


def access_objects(spec: PreviewSpec, policy: IsolationPolicy) -> list[dict[str, Any]]:
    """The namespace and the service's rights in it: applied first, everything else needs them."""
    return [namespace(spec, policy), *role_bindings(spec, policy)]


def guard_objects(spec: PreviewSpec, policy: IsolationPolicy, opening: Opening | None = None) -> list[dict[str, Any]]:
    """Quota, limits and isolation: applied before anything runs in the namespace."""
    return [resource_quota(spec, policy), limit_range(spec), network_policy(spec, policy, opening)]
