"""A deploy and a teardown through the pipeline with each routing, its objects accepted by the
real API server with the CRDs the controllers ship (from their Go modules: tests/tools/crds)."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client as k8s

from app.domain.k8s import routing
from app.domain.states import PreviewState
from tests.testbed.helpers import deliver, run, the_preview
from tests.testbed.kube.controlplane import tools_bin
from tests.testbed.kube.waiting import namespace_gone
from tests.testbed.routing_specs import GATEWAY, policy_for, spec


@pytest.fixture(scope="session")
def routing_crds(kube_cluster):
    """Gateway API (standard channel), Envoy Gateway and Traefik CRDs, once per session."""
    folder = tools_bin().parent / "crds"
    if not folder.exists():
        pytest.fail(f"{folder} is missing: run tests/tools/build.sh crds (or `make tools`)")
    # resolve(): kubectl reads no directory through a symbolic link.
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(folder.resolve()))
    kube_cluster.kubectl("wait", "--for=condition=established", "--timeout=60s", "crd", "--all")
    return folder


@pytest.fixture
def database_url(postgres_server):
    return postgres_server.create_database(f"routing_{uuid.uuid4().hex[:8]}")


# NGINX Gateway Fabric's module is not served by the Go module proxy, so its CRD is not
# installed: with it the deploy is tested in public access (the HTTPRoute alone).
DEPLOYABLE = [
    ("ingress-nginx", "basic"),
    ("gateway-envoy", "basic"),
    ("gateway-traefik", "basic"),
    ("gateway-nginx", "public"),
    ("ingress-nginx", "gitea"),
    ("gateway-traefik", "gitea"),
]
SIGN_IN = {"auth_url": "http://previews-web.previews.svc"}


@pytest.mark.kube
@pytest.mark.parametrize(("name", "access"), DEPLOYABLE)
def test_a_deploy_and_teardown_with_each_routing(client, services, kube_api, routing_crds, name, access):
    services.settings = services.settings.replace(routing=name, gateway=GATEWAY, access=access, **SIGN_IN)
    accepted = deliver(client, "pull_request_opened", "pull_request")
    assert run(services, accepted["delivery_id"]) == "ready"
    preview = the_preview()
    custom = k8s.CustomObjectsApi(kube_api)
    if name != "ingress-nginx":
        routes = custom.list_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", preview.namespace, "httproutes"
        )
        assert [r["spec"]["hostnames"] for r in routes["items"]] == [[f"{preview.slug}.preview.localhost"]]
        assert not k8s.NetworkingV1Api(kube_api).list_namespaced_ingress(preview.namespace).items
    if name == "gateway-envoy":
        policy = custom.list_namespaced_custom_object(
            "gateway.envoyproxy.io", "v1alpha1", preview.namespace, "securitypolicies"
        )["items"][0]["spec"]
        assert policy["basicAuth"]["users"]["name"] == "preview-basic-auth"
    if name == "gateway-traefik":
        middleware = custom.list_namespaced_custom_object("traefik.io", "v1alpha1", preview.namespace, "middlewares")[
            "items"
        ][0]["spec"]
        if access == "basic":
            assert middleware["basicAuth"]["secret"] == "preview-auth"
            assert list(services.kube.read_secret_data(preview.namespace, "preview-auth")) == ["users"]
        else:
            forward = middleware["forwardAuth"]
            assert forward["address"] == f"http://previews-web.previews.svc/auth/forward/{preview.slug}"
            assert forward["authRequestHeaders"] == ["Cookie"]
    if name == "ingress-nginx":
        annotations = (
            k8s.NetworkingV1Api(kube_api).list_namespaced_ingress(preview.namespace).items[0].metadata.annotations
        )
        auth_url = annotations.get("nginx.ingress.kubernetes.io/auth-url")
        assert auth_url == (
            f"http://previews-web.previews.svc/auth/preview/{preview.slug}" if access == "gitea" else None
        )
        assert ("nginx.ingress.kubernetes.io/auth-type" in annotations) == (access == "basic")
    secret = services.kube.read_secret_data(preview.namespace, "preview-basic-auth")
    assert (secret is not None) == (access == "basic")

    closed = deliver(client, "pull_request_closed", "pull_request")
    assert run(services, closed["delivery_id"]) == "deleted"
    assert the_preview().state == PreviewState.DELETED
    namespace_gone(kube_api, preview.namespace)


@pytest.mark.kube
def test_the_server_accepts_the_nginx_gateway_route(kube_cluster, kube_api, routing_crds, kube_namespace):
    """Without NGINX Gateway Fabric's CRD its filter cannot be checked; its HTTPRoute can."""
    route = next(o for o in routing.route_objects(spec(), policy_for("gateway-nginx")) if o["kind"] == "HTTPRoute")
    route["metadata"]["namespace"] = kube_namespace
    k8s.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", kube_namespace, "httproutes", route, dry_run="All"
    )
