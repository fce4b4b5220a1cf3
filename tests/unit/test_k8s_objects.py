"""The objects of one preview, whole, as the builders in app/domain/k8s make them (pure: no
cluster). The cluster tests check that the API server takes them and that they work."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from app.domain.databases import Connection
from app.domain.k8s import build, database, isolation, routing, workload
from app.domain.k8s.labels import PreviewSpec
from app.domain.naming import preview_names
from app.settings import Settings
from app.usecases.deploy import policies

NOW = datetime(2026, 12, 3, 12, 0, 0)
NAMES = preview_names("acme/shop", "acme/shop#12", 12, "feature/login", "preview.example.com")
SPEC = PreviewSpec(
    7,
    NAMES,
    "acme/shop",
    "feature/login",
    "a" * 40,
    NOW,
    NOW + timedelta(days=7),
    timedelta(days=7),
    12,
    "https://git.example.com/acme/shop/pulls/12",
)
NAMESPACE = "preview-shop-pr-12-ed849dcfdbc1ae48"
SLUG = "shop-pr-12-ed849dcfdbc1ae48"
LABELS = {
    "environment": "preview",
    "app.kubernetes.io/managed-by": "gitea-previews",
    "app.kubernetes.io/part-of": "gitea-previews",
    "app.kubernetes.io/instance": SLUG,
    "previews.gitea.io/preview-id": "7",
    "previews.gitea.io/repository": "acme-shop-d21b2cdf12b74c75",
    "previews.gitea.io/pr": "12",
}
SETTINGS = Settings(
    gitea_url="https://git.example.com:3000",
    preview_registry="registry.example.com/previews",
    build_egress_allowed_cidrs=("10.1.2.0/24",),
    controller_service_account="previews/worker",
    preview_cluster_role="previews-worker",
)
IMAGE = "registry.example.com/previews/acme/shop@sha256:" + "b" * 64


def meta(name: str, component: str | None = None) -> dict:
    labels = {**LABELS, "app.kubernetes.io/component": component} if component else LABELS
    return {"name": name, "namespace": NAMESPACE, "labels": labels}


def test_the_names_the_expectations_below_are_written_for():
    assert (NAMES.namespace, NAMES.slug, NAMES.app) == (NAMESPACE, SLUG, "shop-preview")


def test_the_namespace_carries_its_podsecurity_level_and_what_it_is_a_preview_of():
    assert isolation.namespace(SPEC, policies.isolation(SETTINGS)) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                **LABELS,
                "pod-security.kubernetes.io/enforce": "baseline",
                "pod-security.kubernetes.io/warn": "baseline",
            },
            "annotations": {
                "created-at": "2026-12-03T12:00:00Z",
                "ttl": "604800s",
                "expires-at": "2026-12-10T12:00:00Z",
                "previews.gitea.io/repository": "acme/shop",
                "previews.gitea.io/branch": "feature/login",
                "previews.gitea.io/head-sha": "a" * 40,
                "previews.gitea.io/pr-url": "https://git.example.com/acme/shop/pulls/12",
            },
        },
    }


def test_the_service_s_rights_in_the_namespace_are_the_bindings_it_was_given_and_no_more():
    assert isolation.role_bindings(SPEC, policies.isolation(SETTINGS)) == [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "gitea-previews-worker", "namespace": NAMESPACE, "labels": LABELS},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "previews-worker"},
            "subjects": [{"kind": "ServiceAccount", "name": "worker", "namespace": "previews"}],
        }
    ]  # the web's account is not configured here: no binding for it
    assert isolation.role_bindings(SPEC, policies.isolation(Settings())) == []


def test_quota_and_default_limits_bound_everything_in_the_namespace():
    quota, limits, _ = isolation.guard_objects(SPEC, policies.isolation(SETTINGS))
    assert quota == {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta("preview-quota"),
        "spec": {
            "hard": {
                "requests.cpu": "500m",
                "requests.memory": "1Gi",
                "limits.cpu": "2",
                "limits.memory": "2Gi",
                "limits.ephemeral-storage": "5Gi",
                "pods": "5",
                "services": "3",
            }
        },
    }
    assert limits == {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": meta("preview-limits"),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "defaultRequest": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "128Mi"},
                    "default": {"cpu": "500m", "memory": "512Mi", "ephemeral-storage": "1Gi"},
                }
            ]
        },
    }


DNS = {
    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}
OWN_NAMESPACE = {"to": [{"podSelector": {}}]}
ANYWHERE_BUT_DENIED = {
    "to": [
        {
            "ipBlock": {
                "cidr": "0.0.0.0/0",
                "except": [
                    "169.254.0.0/16",
                    "168.63.129.16/32",
                    "10.0.0.0/8",
                    "172.16.0.0/12",
                    "192.168.0.0/16",
                    "100.64.0.0/10",
                ],
            }
        },
        {"ipBlock": {"cidr": "::/0", "except": ["fc00::/7", "fe80::/10"]}},
    ]
}


def test_the_network_policy_lets_in_only_the_ingress_controller_and_out_only_past_the_denied_ranges():
    database_port = isolation.Opening(("10.9.0.0/16",), (5432,))
    assert isolation.network_policy(SPEC, policies.isolation(SETTINGS), database_port) == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("preview-isolation"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "egress": [
                DNS,
                OWN_NAMESPACE,
                ANYWHERE_BUT_DENIED,
                {"to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 5432}]},
            ],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {}},
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
                    ]
                }
            ],
        },
    }


def test_the_app_runs_unprivileged_with_its_commit_and_url_and_no_token():
    app = workload.AppSpec(image=IMAGE, port=3000, health_path="/healthz", env={"FEATURE": "on"})
    assert workload.deployment(SPEC, app) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("shop-preview", "app"),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": SLUG, "app.kubernetes.io/component": "app"}},
            "template": {
                "metadata": {
                    "labels": {**LABELS, "app.kubernetes.io/component": "app"},
                    "annotations": {"previews.gitea.io/head-sha": "a" * 40},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "app",
                            "image": IMAGE,
                            "securityContext": {"allowPrivilegeEscalation": False},
                            "ports": [{"name": "http", "containerPort": 3000}],
                            "env": [
                                {"name": "PREVIEW_MODE", "value": "true"},
                                {"name": "PREVIEW_URL", "value": f"https://{SLUG}.preview.example.com"},
                                {"name": "PREVIEW_COMMIT", "value": "a" * 40},
                                {"name": "FEATURE", "value": "on"},
                            ],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "500m", "memory": "512Mi"},
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 5,
                                "failureThreshold": 3,
                            },
                        }
                    ],
                },
            },
        },
    }


def test_the_app_s_service_and_an_extra_service_are_reached_by_name():
    redis = workload.ExtraServiceSpec("redis", "redis:7", 6379)
    *extra, app_deployment, app_service = workload.workload_objects(SPEC, workload.AppSpec(IMAGE, services=(redis,)))
    assert app_service == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("shop-preview", "app"),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/instance": SLUG, "app.kubernetes.io/component": "app"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    assert [(obj["kind"], obj["metadata"]["name"]) for obj in extra] == [("Deployment", "redis"), ("Service", "redis")]
    assert extra[1]["spec"]["ports"] == [{"name": "service", "port": 6379, "targetPort": "service"}]
    assert extra[0]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert app_deployment["kind"] == "Deployment"


def test_the_ingress_asks_for_the_password_and_routes_the_host_to_the_app():
    [ingress] = routing.route_objects(SPEC, policies.routing(SETTINGS))
    assert ingress == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            **meta("shop-preview", "app"),
            "annotations": {
                "nginx.ingress.kubernetes.io/auth-type": "basic",
                "nginx.ingress.kubernetes.io/auth-secret": "preview-basic-auth",
                "nginx.ingress.kubernetes.io/auth-secret-type": "auth-file",
                "nginx.ingress.kubernetes.io/auth-realm": "Preview environment",
            },
        },
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": f"{SLUG}.preview.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "shop-preview", "port": {"name": "http"}}},
                            }
                        ]
                    },
                }
            ],
        },
    }


def test_tls_comes_from_the_issuer_or_the_operator_s_secret():
    issued = routing.route_objects(SPEC, policies.routing(SETTINGS.replace(cert_manager_issuer="letsencrypt")))[0]
    assert issued["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert issued["spec"]["tls"] == [{"hosts": [f"{SLUG}.preview.example.com"], "secretName": f"{SLUG}-tls"}]
    given = routing.route_objects(SPEC, policies.routing(SETTINGS.replace(ingress_tls_secret="wildcard")))[0]
    assert given["spec"]["tls"][0]["secretName"] == "wildcard"


BUILD = build.BuildSpec(
    job_name="build-shop-aaaaaaaaaaaa",
    namespace="preview-builds",
    clone_url="https://git.example.com/acme/shop.git",
    git_ref="refs/pull/12/head",
    destination="registry.example.com/previews/acme/shop:pr-12-aaaaaaaaaaaa",
    cache_repository=None,
    target="release",
    build_args={"NODE_ENV": "production"},
)


def test_the_build_job_gives_the_git_credentials_to_fetch_source_only():
    job = build.build_job(SPEC, BUILD, policies.build(SETTINGS))
    pod = job["spec"]["template"]["spec"]
    [fetch], [kaniko] = pod["initContainers"], pod["containers"]
    assert job["metadata"] == {
        "name": "build-shop-aaaaaaaaaaaa",
        "namespace": "preview-builds",
        "labels": {**LABELS, "app.kubernetes.io/component": "build", "previews.gitea.io/sha": "a" * 12},
    }
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (0, 1800)  # BUILD_TIMEOUT
    assert (pod["automountServiceAccountToken"], pod["enableServiceLinks"]) == (False, False)
    assert kaniko == {
        "name": "kaniko",
        "image": SETTINGS.builder_image,
        "args": [
            "--context=dir:///workspace",
            "--dockerfile=/workspace/Dockerfile",
            "--destination=registry.example.com/previews/acme/shop:pr-12-aaaaaaaaaaaa",
            "--cache=false",
            "--digest-file=/dev/termination-log",
            "--target=release",
            "--build-arg=NODE_ENV=production",
        ],
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2000m", "memory": "4Gi"}},
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            {"name": "source", "mountPath": "/workspace"},
            {"name": "docker-config", "mountPath": "/kaniko/.docker", "readOnly": True},
        ],
    }
    secrets_in_fetch = {e["valueFrom"]["secretKeyRef"]["name"] for e in fetch["env"] if "valueFrom" in e}
    assert secrets_in_fetch == {"git-credentials"}
    assert fetch["securityContext"]["runAsNonRoot"] is True
    assert fetch["image"] == SETTINGS.source_image


def test_builds_reach_gitea_and_the_registry_on_their_ports_and_nothing_else_private():
    policy = build.build_network_policy(policies.build(SETTINGS))
    assert policy["metadata"] == {
        "name": "build-isolation",
        "namespace": "preview-builds",
        "labels": {"app.kubernetes.io/managed-by": "gitea-previews"},
    }
    assert policy["spec"]["ingress"] == []
    assert policy["spec"]["egress"] == [
        DNS,
        OWN_NAMESPACE,
        ANYWHERE_BUT_DENIED,
        {
            "to": [{"ipBlock": {"cidr": "10.1.2.0/24"}}],
            "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 3000}],
        },
    ]


def test_the_build_quota_holds_build_concurrency_builds():
    quota = build.build_quota(policies.build(SETTINGS.replace(build_concurrency=3)))
    assert quota["spec"]["hard"] == {
        "pods": "3",
        "requests.cpu": "1500m",
        "requests.memory": "3Gi",
        "limits.cpu": "6000m",
        "limits.memory": "12Gi",
    }


@pytest.mark.parametrize(("engine", "port"), [("postgres", 5432), ("mysql", 3306)])
def test_an_in_namespace_database_keeps_its_password_in_the_secret(engine, port):
    connection = Connection(engine, database.SERVER, port, "app", "app", "pw-pw-pw")
    server, service = database.server_objects(SPEC, policies.database(SETTINGS), connection, f"{engine}:17")
    [container] = server["spec"]["template"]["spec"]["containers"]
    passwords = [e for e in container["env"] if e["name"] in ("POSTGRES_PASSWORD", "MYSQL_PASSWORD")]
    assert len(passwords) == 1
    assert all("value" not in e and e["valueFrom"]["secretKeyRef"]["name"] == "preview-database" for e in passwords)
    assert server["spec"]["volumeClaimTemplates"][0]["spec"]["resources"] == {"requests": {"storage": "1Gi"}}
    assert service["spec"]["ports"] == [{"name": "database", "port": port, "targetPort": "database"}]
    secret = database.connection_secret(SPEC, connection, "in-namespace")
    assert secret["metadata"]["annotations"] == {"previews.gitea.io/database-mode": "in-namespace"}
    assert secret["stringData"]["DATABASE_URL"].endswith(f"@database:{port}/app")


def test_migrate_runs_the_app_s_image_with_its_env_and_the_database_secret():
    app = workload.AppSpec(IMAGE, requests={"memory": "256Mi"})
    job = database.command_job(SPEC, app, policies.database(SETTINGS), "migrate", ("npm", "run", "migrate"), "c" * 40)
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert job["metadata"]["name"] == "migrate-cccccccccccc"
    assert job["spec"]["activeDeadlineSeconds"] == int(SETTINGS.rollout_timeout.total_seconds())
    assert container["command"] == ["npm", "run", "migrate"]
    assert container["image"] == IMAGE
    assert container["envFrom"] == [{"secretRef": {"name": "preview-database"}}]
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
