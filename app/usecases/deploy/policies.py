"""The settings as each object builder needs them (app/domain/k8s/): the one place that reads
the 75-field Settings for the cluster's objects, so each builder sees only its own few."""

from __future__ import annotations

from app.domain.k8s.build import BuildPolicy, build_opening
from app.domain.k8s.database import DatabasePolicy
from app.domain.k8s.isolation import Binding, IsolationPolicy
from app.domain.k8s.routing import RoutingPolicy
from app.settings import Settings


def isolation(settings: Settings) -> IsolationPolicy:
    grants = (
        ("gitea-previews-worker", settings.preview_cluster_role, settings.controller_service_account),
        ("gitea-previews-web", settings.preview_reader_cluster_role, settings.web_service_account),
    )
    return IsolationPolicy(
        pod_security_level=settings.pod_security_level,
        bindings=tuple(Binding(name, role, account) for name, role, account in grants if role and account),
        quota={
            "requests.cpu": settings.quota_requests_cpu,
            "requests.memory": settings.quota_requests_memory,
            "limits.cpu": settings.quota_limits_cpu,
            "limits.memory": settings.quota_limits_memory,
            "limits.ephemeral-storage": settings.quota_ephemeral_storage,
            "pods": str(settings.quota_pods),
            "services": str(settings.quota_services),
        },
        denied_cidrs=settings.egress_denied_cidrs,
        ingress_namespace=settings.ingress_controller_namespace,
    )


def build(settings: Settings) -> BuildPolicy:
    return BuildPolicy(
        namespace=settings.build_namespace,
        source_image=settings.source_image,
        builder_image=settings.builder_image,
        registry_insecure=settings.registry_insecure,
        timeout_seconds=int(settings.build_timeout.total_seconds()),
        concurrency=settings.build_concurrency,
        denied_cidrs=settings.egress_denied_cidrs,
        opening=build_opening(
            settings.build_egress_allowed_cidrs,
            settings.gitea_url,
            settings.preview_registry,
            settings.registry_insecure,
        ),
    )


def routing(settings: Settings) -> RoutingPolicy:
    return RoutingPolicy(
        routing=settings.routing,
        access=settings.access,
        ingress_class=settings.ingress_class,
        cert_manager_issuer=settings.cert_manager_issuer,
        tls_secret=settings.ingress_tls_secret,
        gateway=settings.gateway,
        public_url=settings.public_url,
        auth_base=(settings.auth_url or settings.public_url).rstrip("/"),
    )


def database(settings: Settings) -> DatabasePolicy:
    return DatabasePolicy(
        postgres_image=settings.postgres_image,
        mysql_image=settings.mysql_image,
        storage=settings.database_storage,
        storage_class=settings.database_storage_class,
        job_timeout_seconds=int(settings.rollout_timeout.total_seconds()),
    )
