"""How a preview is reached: one pure function per routing, beside the others.

Each returns the objects that route `https://<host>` to the app's Service and put
the access in front of it, and says which Secret key and htpasswd hash its
controller reads. Adding a controller is one more `Routing` in ROUTINGS.

| routing          | route                    | basic auth object                          | Secret key  | hash   |
|------------------|--------------------------|--------------------------------------------|-------------|--------|
| ingress-nginx    | Ingress + annotations    | (annotations)                              | auth        | apr1   |
| gateway-nginx    | HTTPRoute + ExtensionRef | gateway.nginx.org AuthenticationFilter     | auth        | apr1   |
| gateway-envoy    | HTTPRoute                | gateway.envoyproxy.io SecurityPolicy       | .htpasswd   | {SHA}  |
| gateway-traefik  | HTTPRoute + ExtensionRef | traefik.io Middleware                      | users (*)   | apr1   |

(*) in a Secret of its own, `preview-auth`: Traefik refuses a Secret with any other key
(seen on the real node: "found 3 elements for secret ..., must be single element exactly").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.domain import credentials
from app.domain.manifests import AUTH_REALM, PreviewSpec, ingress, object_meta
from app.settings import Settings

GATEWAY_GROUP = "gateway.networking.k8s.io"
AUTH_OBJECT = "preview-auth"  # the controller's auth object, where it has one


@dataclass(frozen=True)
class Routing:
    secret_key: str  # where the controller reads the htpasswd file in the auth Secret
    hash_scheme: str  # credentials.htpasswd_line scheme it accepts
    objects: Callable[[PreviewSpec, Settings], list[dict[str, Any]]]
    # The controller reads the htpasswd line from a Secret holding nothing else (AUTH_OBJECT).
    hash_alone: bool = False


def _secret(spec: PreviewSpec, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": object_meta(spec, name),
        "stringData": data,
    }


def auth_secrets(spec: PreviewSpec, settings: Settings, username: str, password: str) -> list[dict[str, Any]]:
    """The preview's credentials: the plain username and password for people (the credentials
    route), and the htpasswd line under the key (and in the hash) its controller reads, in the
    same Secret or, where the controller wants it alone, in one of its own."""
    routing = ROUTINGS[settings.routing]
    line = {routing.secret_key: credentials.htpasswd_line(username, password, routing.hash_scheme) + "\n"}
    for_people = {"username": username, "password": password}
    if routing.hash_alone:
        return [_secret(spec, spec.names.auth_secret, for_people), _secret(spec, AUTH_OBJECT, line)]
    return [_secret(spec, spec.names.auth_secret, {**line, **for_people})]


def route_objects(spec: PreviewSpec, settings: Settings) -> list[dict[str, Any]]:
    """The route to the app and the access in front of it, for the configured routing and access."""
    return ROUTINGS[settings.routing].objects(spec, settings)


def auth_base(settings: Settings) -> str:
    """Where the proxies reach this service's forward-auth endpoints."""
    return (settings.auth_url or settings.public_url).rstrip("/")


def _ingress_nginx(spec: PreviewSpec, settings: Settings) -> list[dict[str, Any]]:
    found = ingress(spec, settings)
    annotations = found["metadata"]["annotations"]
    for key in [k for k in annotations if k.startswith("nginx.ingress.kubernetes.io/auth-")]:
        del annotations[key]
    prefix = "nginx.ingress.kubernetes.io"
    if settings.access == "basic":
        annotations |= {
            f"{prefix}/auth-type": "basic",
            f"{prefix}/auth-secret": spec.names.auth_secret,
            f"{prefix}/auth-secret-type": "auth-file",
            f"{prefix}/auth-realm": AUTH_REALM,
        }
    elif settings.access == "gitea":
        annotations |= {
            f"{prefix}/auth-url": f"{auth_base(settings)}/auth/preview/{spec.names.slug}",
            f"{prefix}/auth-signin": f"{settings.public_url}/auth/signin?rd=$scheme://$host$escaped_request_uri",
            # The cookie the answer to a sign-in ticket sets reaches the browser.
            f"{prefix}/auth-always-set-cookie": "true",
            f"{prefix}/auth-response-headers": "X-Preview-User",
        }
    return [found]


def _parent(settings: Settings) -> dict[str, Any]:
    namespace, _, name = (settings.gateway or "").partition("/")
    return {"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": namespace, "name": name}


def _http_route(spec: PreviewSpec, settings: Settings, filters: list[dict[str, Any]]) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [{"name": spec.names.app, "port": 80}],
    }
    if filters:
        rule["filters"] = filters
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": object_meta(spec, spec.names.app, "app"),
        "spec": {"parentRefs": [_parent(settings)], "hostnames": [spec.names.host], "rules": [rule]},
    }


def _extension_ref(group: str, kind: str) -> dict[str, Any]:
    return {"type": "ExtensionRef", "extensionRef": {"group": group, "kind": kind, "name": AUTH_OBJECT}}


def _gateway_nginx(spec: PreviewSpec, settings: Settings) -> list[dict[str, Any]]:
    # Settings refuse gitea access with this routing (it needs the experimental ExternalAuth filter).
    if settings.access != "basic":
        return [_http_route(spec, settings, [])]
    group, kind = "gateway.nginx.org", "AuthenticationFilter"
    basic = {"type": "Basic", "basic": {"secretRef": {"name": spec.names.auth_secret}, "realm": AUTH_REALM}}
    return [
        {"apiVersion": f"{group}/v1alpha1", "kind": kind, "metadata": object_meta(spec, AUTH_OBJECT), "spec": basic},
        _http_route(spec, settings, [_extension_ref(group, kind)]),
    ]


def _gateway_envoy(spec: PreviewSpec, settings: Settings) -> list[dict[str, Any]]:
    route = _http_route(spec, settings, [])
    if settings.access == "public":
        return [route]
    # Settings refuse gitea access with this routing (extAuth would not pass on the cookie and ticket).
    policy: dict[str, Any] = {
        "targetRefs": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute", "name": spec.names.app}],
        "basicAuth": {"users": {"name": spec.names.auth_secret}},
    }
    return [
        route,
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "SecurityPolicy",
            "metadata": object_meta(spec, AUTH_OBJECT),
            "spec": policy,
        },
    ]


def _gateway_traefik(spec: PreviewSpec, settings: Settings) -> list[dict[str, Any]]:
    if settings.access == "public":
        return [_http_route(spec, settings, [])]
    group, kind = "traefik.io", "Middleware"
    middleware: dict[str, Any] = (
        {"basicAuth": {"secret": AUTH_OBJECT, "realm": AUTH_REALM}}
        if settings.access == "basic"
        # Traefik sends the X-Forwarded-* headers and hands a non-2xx answer to the browser.
        else {
            "forwardAuth": {
                # The address names the preview; of the client's headers only the cookie is passed on.
                "address": f"{auth_base(settings)}/auth/forward/{spec.names.slug}",
                "authRequestHeaders": ["Cookie"],
                "authResponseHeaders": ["X-Preview-User"],
            }
        }
    )
    return [
        {
            "apiVersion": f"{group}/v1alpha1",
            "kind": kind,
            "metadata": object_meta(spec, AUTH_OBJECT),
            "spec": middleware,
        },
        _http_route(spec, settings, [_extension_ref(group, kind)]),
    ]


ROUTINGS: dict[str, Routing] = {
    "ingress-nginx": Routing("auth", "apr1", _ingress_nginx),
    "gateway-nginx": Routing("auth", "apr1", _gateway_nginx),
    "gateway-envoy": Routing(".htpasswd", "sha", _gateway_envoy),
    "gateway-traefik": Routing("users", "apr1", _gateway_traefik, hash_alone=True),
}
