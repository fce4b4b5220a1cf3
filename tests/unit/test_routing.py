"""Each routing's objects, rendered by pure functions: the route, the access in front of it and
the Secret each controller reads (tests/cluster/test_routing_deploys.py deploys with each)."""

from __future__ import annotations

import dataclasses

import pytest

from app.domain.k8s import routing
from app.settings import ROUTINGS, Settings, SettingsError
from tests.testbed.routing_specs import GATEWAY, policy_for, spec


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
        assert list(secrets["preview-auth"]) == [key]
        assert key not in secrets["preview-basic-auth"]
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


def test_a_preview_url_carries_the_scheme_and_port_previews_are_served_on():
    s = spec()
    assert s.url == f"https://{s.names.host}"
    demo = dataclasses.replace(s, scheme="http", port=8080)
    assert demo.url == f"http://{s.names.host}:8080"
    settings = Settings.from_env({"PREVIEW_SCHEME": "http", "PREVIEW_PORT": "8080"})
    assert (settings.preview_scheme, settings.preview_port) == ("http", 8080)
    with pytest.raises(SettingsError, match="PREVIEW_SCHEME"):
        Settings.from_env({"PREVIEW_SCHEME": "ftp"})
