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
from app.domain.k8s.labels import PreviewSpec, object_meta, secret

AUTH_REALM = "Preview environment"
GATEWAY_GROUP = "gateway.networking.k8s.io"
AUTH_OBJECT = "preview-auth"  # the controller's auth object, where it has one


@dataclass(frozen=True)
class RoutingPolicy:
    routing: str  # a key of ROUTINGS
    access: str  # basic | gitea | public
    ingress_class: str | None
    cert_manager_issuer: str | None
    tls_secret: str | None
    gateway: str | None  # namespace/name of the Gateway, for the gateway routings
    public_url: str  # this service, where sign-in starts
    auth_base: str  # where the proxies reach this service's forward-auth endpoints


@dataclass(frozen=True)
class Routing:
    secret_key: str  # where the controller reads the htpasswd file in the auth Secret
    hash_scheme: str  # credentials.htpasswd_line scheme it accepts
    objects: Callable[[PreviewSpec, RoutingPolicy], list[dict[str, Any]]]
    # The controller reads the htpasswd line from a Secret holding nothing else (AUTH_OBJECT).
    hash_alone: bool = False


def auth_secrets(spec: PreviewSpec, policy: RoutingPolicy, username: str, password: str) -> list[dict[str, Any]]:
    """The preview's credentials: the plain username and password for people (the credentials
    route), and the htpasswd line under the key (and in the hash) its controller reads, in the
    same Secret or, where the controller wants it alone, in one of its own."""
    routing = ROUTINGS[policy.routing]
    line = {routing.secret_key: credentials.htpasswd_line(username, password, routing.hash_scheme) + "\n"}
    for_people = {"username": username, "password": password}
    if routing.hash_alone:
        return [secret(spec, spec.names.auth_secret, for_people), secret(spec, AUTH_OBJECT, line)]
    return [secret(spec, spec.names.auth_secret, {**line, **for_people})]


def route_objects(spec: PreviewSpec, policy: RoutingPolicy) -> list[dict[str, Any]]:
    """The route to the app and the access in front of it, for the configured routing and access."""
    return ROUTINGS[policy.routing].objects(spec, policy)


def ingress(spec: PreviewSpec, policy: RoutingPolicy) -> dict[str, Any]:
    annotations = {
        "nginx.ingress.kubernetes.io/auth-type": "basic",
        "nginx.ingress.kubernetes.io/auth-secret": spec.names.auth_secret,
        "nginx.ingress.kubernetes.io/auth-secret-type": "auth-file",
        "nginx.ingress.kubernetes.io/auth-realm": AUTH_REALM,
    }
    body: dict[str, Any] = {
        "ingressClassName": policy.ingress_class,
        "rules": [
            {
                "host": spec.names.host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": spec.names.app, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ],
    }
    if policy.cert_manager_issuer:
        annotations["cert-manager.io/cluster-issuer"] = policy.cert_manager_issuer
    if policy.tls_secret or policy.cert_manager_issuer:
        secret = policy.tls_secret or f"{spec.names.slug}-tls"
        body["tls"] = [{"hosts": [spec.names.host], "secretName": secret}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": object_meta(spec, spec.names.app, "app", annotations=annotations),
        "spec": body,
    }


def _ingress_nginx(spec: PreviewSpec, policy: RoutingPolicy) -> list[dict[str, Any]]:
    found = ingress(spec, policy)
    annotations = found["metadata"]["annotations"]
    for key in [k for k in annotations if k.startswith("nginx.ingress.kubernetes.io/auth-")]:
        del annotations[key]
    prefix = "nginx.ingress.kubernetes.io"
    if policy.access == "basic":
        annotations |= {
            f"{prefix}/auth-type": "basic",
            f"{prefix}/auth-secret": spec.names.auth_secret,
            f"{prefix}/auth-secret-type": "auth-file",
            f"{prefix}/auth-realm": AUTH_REALM,
        }
    elif policy.access == "gitea":
        annotations |= {
            f"{prefix}/auth-url": f"{policy.auth_base}/auth/preview/{spec.names.slug}",
            f"{prefix}/auth-signin": f"{policy.public_url}/auth/signin?rd=$scheme://$host$escaped_request_uri",
            # The cookie the answer to a sign-in ticket sets reaches the browser.
            f"{prefix}/auth-always-set-cookie": "true",
            f"{prefix}/auth-response-headers": "X-Preview-User",
        }
    return [found]


def _parent(policy: RoutingPolicy) -> dict[str, Any]:
    namespace, _, name = (policy.gateway or "").partition("/")
    return {"group": GATEWAY_GROUP, "kind": "Gateway", "namespace": namespace, "name": name}


def _http_route(spec: PreviewSpec, policy: RoutingPolicy, filters: list[dict[str, Any]]) -> dict[str, Any]:
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
        "spec": {"parentRefs": [_parent(policy)], "hostnames": [spec.names.host], "rules": [rule]},
    }


def _extension_ref(group: str, kind: str) -> dict[str, Any]:
    return {"type": "ExtensionRef", "extensionRef": {"group": group, "kind": kind, "name": AUTH_OBJECT}}


def _gateway_nginx(spec: PreviewSpec, policy: RoutingPolicy) -> list[dict[str, Any]]:
    # Settings refuse gitea access with this routing (it needs the experimental ExternalAuth filter).
    if policy.access != "basic":
        return [_http_route(spec, policy, [])]
    group, kind = "gateway.nginx.org", "AuthenticationFilter"
    basic = {"type": "Basic", "basic": {"secretRef": {"name": spec.names.auth_secret}, "realm": AUTH_REALM}}
    return [
        {"apiVersion": f"{group}/v1alpha1", "kind": kind, "metadata": object_meta(spec, AUTH_OBJECT), "spec": basic},
        _http_route(spec, policy, [_extension_ref(group, kind)]),
    ]


def _gateway_envoy(spec: PreviewSpec, policy: RoutingPolicy) -> list[dict[str, Any]]:
    route = _http_route(spec, policy, [])
    if policy.access == "public":
        return [route]
    # Settings refuse gitea access with this routing (extAuth would not pass on the cookie and ticket).
    security: dict[str, Any] = {
        "targetRefs": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute", "name": spec.names.app}],
        "basicAuth": {"users": {"name": spec.names.auth_secret}},
    }
    return [
        route,
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "SecurityPolicy",
            "metadata": object_meta(spec, AUTH_OBJECT),
            "spec": security,
        },
    ]


def _gateway_traefik(spec: PreviewSpec, policy: RoutingPolicy) -> list[dict[str, Any]]:
    if policy.access == "public":
        return [_http_route(spec, policy, [])]
    group, kind = "traefik.io", "Middleware"
    middleware: dict[str, Any] = (
        {"basicAuth": {"secret": AUTH_OBJECT, "realm": AUTH_REALM}}
        if policy.access == "basic"
        # Traefik sends the X-Forwarded-* headers and hands a non-2xx answer to the browser.
        else {
            "forwardAuth": {
                # The address names the preview; of the client's headers only the cookie is passed on.
                "address": f"{policy.auth_base}/auth/forward/{spec.names.slug}",
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
        _http_route(spec, policy, [_extension_ref(group, kind)]),
    ]


ROUTINGS: dict[str, Routing] = {
    "ingress-nginx": Routing("auth", "apr1", _ingress_nginx),
    "gateway-nginx": Routing("auth", "apr1", _gateway_nginx),
    "gateway-envoy": Routing(".htpasswd", "sha", _gateway_envoy),
    "gateway-traefik": Routing("users", "apr1", _gateway_traefik, hash_alone=True),
}
