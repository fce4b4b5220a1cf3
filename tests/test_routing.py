"""Each routing's objects: rendered by pure functions, accepted by the real API server with
the CRDs the controllers ship (from their Go modules: tests/tools/crds), and a deploy and
teardown through the pipeline with each."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta

import pytest
from kubernetes import client as k8s

from app.domain.k8s import routing
from app.domain.k8s.labels import PreviewSpec
from app.domain.k8s.routing import RoutingPolicy
from app.domain.naming import preview_names
from app.domain.states import PreviewState
from app.settings import ROUTINGS, Settings, SettingsError
from app.usecases.deploy import policies
from tests.helpers import deliver, run, the_preview
from tests.kube.controlplane import tools_bin
from tests.kube.waiting import namespace_gone

GATEWAY = "gateways/previews"
NOW = datetime(2026, 11, 27, 12, 0, 0)


def spec() -> PreviewSpec:
    names = preview_names("acme/shop", "acme/shop#12", 12, "feature", "preview.example.com")
    return PreviewSpec(
        7, names, "acme/shop", "feature", "a" * 40, NOW, NOW + timedelta(hours=1), timedelta(hours=1), 12
    )


def settings_for(name: str, access: str = "basic") -> Settings:
    return Settings(routing=name, gateway=GATEWAY, access=access)


def policy_for(name: str, access: str = "basic") -> RoutingPolicy:
    return policies.routing(settings_for(name, access))


def test_every_routing_setting_has_its_function():
    assert tuple(routing.ROUTINGS) == ROUTINGS


def test_sign_in_with_gitea_needs_its_application_and_a_routing_that_asks():
    base = {"PREVIEW_ACCESS": "gitea", "GITEA_URL": "http://gitea.test", "PREVIEW_OAUTH_CLIENT_ID": "id"}
    with pytest.raises(SettingsError, match="PREVIEW_OAUTH_CLIENT_SECRET, PREVIEW_SESSION_SECRET"):
        Settings.from_env(base)
    complete = base | {"PREVIEW_OAUTH_CLIENT_SECRET": "secret", "PREVIEW_SESSION_SECRET": "s" * 32}
    assert Settings.from_env(complete).access == "gitea"
    with pytest.raises(SettingsError, match="ExternalAuth"):
        Settings.from_env(complete | {"PREVIEW_ROUTING": "gateway-nginx", "PREVIEW_GATEWAY": GATEWAY})
    with pytest.raises(SettingsError, match="Envoy Gateway's extAuth"):
        Settings.from_env(complete | {"PREVIEW_ROUTING": "gateway-envoy", "PREVIEW_GATEWAY": GATEWAY})


def test_a_gateway_routing_needs_its_gateway():
    with pytest.raises(SettingsError, match="PREVIEW_GATEWAY"):
        Settings.from_env({"PREVIEW_ROUTING": "gateway-envoy"})
    with pytest.raises(SettingsError, match="PREVIEW_ROUTING"):
        Settings.from_env({"PREVIEW_ROUTING": "gateway-haproxy", "PREVIEW_GATEWAY": GATEWAY})
    parsed = Settings.from_env({"PREVIEW_ROUTING": "gateway-traefik", "PREVIEW_GATEWAY": GATEWAY})
    assert (parsed.routing, parsed.gateway) == ("gateway-traefik", GATEWAY)


@pytest.mark.parametrize(
    ("name", "key", "prefix"),
    [
        ("ingress-nginx", "auth", "preview:$apr1$"),
        ("gateway-nginx", "auth", "preview:$apr1$"),
        ("gateway-envoy", ".htpasswd", "preview:{SHA}"),
        ("gateway-traefik", "users", "preview:$apr1$"),
    ],
)
def test_the_secret_holds_the_hash_each_controller_reads_under_its_key(name, key, prefix):
    secrets = {
        s["metadata"]["name"]: s["stringData"]
        for s in routing.auth_secrets(spec(), policy_for(name), "preview", "s3cret-s3cret")
    }
    assert secrets["preview-basic-auth"]["password"] == "s3cret-s3cret"
    if name == "gateway-traefik":  # Traefik reads a Secret with exactly one key
        assert list(secrets["preview-auth"]) == [key] and key not in secrets["preview-basic-auth"]
        assert secrets["preview-auth"][key].startswith(prefix)
    else:
        assert list(secrets) == ["preview-basic-auth"]
        assert secrets["preview-basic-auth"][key].startswith(prefix)


def _kinds(objects):
    return [obj["kind"] for obj in objects]


def test_the_route_objects_of_each_routing():
    s = spec()
    ingress_objects = routing.route_objects(s, policy_for("ingress-nginx"))
    assert _kinds(ingress_objects) == ["Ingress"]
    assert ingress_objects[0]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-type"] == "basic"

    nginx = {obj["kind"]: obj for obj in routing.route_objects(s, policy_for("gateway-nginx"))}
    assert nginx["AuthenticationFilter"]["spec"]["basic"]["secretRef"]["name"] == s.names.auth_secret
    assert nginx["HTTPRoute"]["spec"]["rules"][0]["filters"][0]["extensionRef"]["kind"] == "AuthenticationFilter"
    assert nginx["HTTPRoute"]["spec"]["parentRefs"][0] | {} == {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "namespace": "gateways",
        "name": "previews",
    }
    assert nginx["HTTPRoute"]["spec"]["hostnames"] == [s.names.host]

    envoy = {obj["kind"]: obj for obj in routing.route_objects(s, policy_for("gateway-envoy"))}
    assert envoy["SecurityPolicy"]["spec"]["targetRefs"][0]["name"] == envoy["HTTPRoute"]["metadata"]["name"]
    assert envoy["SecurityPolicy"]["spec"]["basicAuth"]["users"]["name"] == s.names.auth_secret
    assert "filters" not in envoy["HTTPRoute"]["spec"]["rules"][0]

    traefik = {obj["kind"]: obj for obj in routing.route_objects(s, policy_for("gateway-traefik"))}
    assert traefik["Middleware"]["spec"]["basicAuth"]["secret"] == routing.AUTH_OBJECT
    assert traefik["HTTPRoute"]["spec"]["rules"][0]["filters"][0]["extensionRef"]["group"] == "traefik.io"


@pytest.mark.parametrize("name", ROUTINGS)
def test_public_access_puts_nothing_in_front(name):
    objects = routing.route_objects(spec(), policy_for(name, access="public"))
    assert _kinds(objects) in (["Ingress"], ["HTTPRoute"])
    assert not any("auth" in key for key in objects[0]["metadata"].get("annotations", {}))
    assert "filters" not in objects[0]["spec"].get("rules", [{}])[0]


# --- on the real API server ------------------------------------------------------------------


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


def test_a_preview_url_carries_the_scheme_and_port_previews_are_served_on():
    s = spec()
    assert s.url == f"https://{s.names.host}"
    demo = dataclasses.replace(s, scheme="http", port=8080)
    assert demo.url == f"http://{s.names.host}:8080"
    settings = Settings.from_env({"PREVIEW_SCHEME": "http", "PREVIEW_PORT": "8080"})
    assert (settings.preview_scheme, settings.preview_port) == ("http", 8080)
    with pytest.raises(SettingsError, match="PREVIEW_SCHEME"):
        Settings.from_env({"PREVIEW_SCHEME": "ftp"})
