"""The data plane's request counters, read from its Prometheus endpoint: what tells whether
anyone looked at a preview. One class per proxy; each knows how its proxy names a Service.

Done: Traefik (its `traefik_service_requests_total`, with service labels on, the default).
Traefik names a backend after its namespace, Service and port: v3.6's Gateway provider
`<namespace>-<service>-http-80@kubernetesgateway` (recorded on the test bed:
tests/samples/traefik/). Its Ingress provider's `<namespace>-<service>-<port>@kubernetes`
is matched too but was not seen here (no routing of ours uses Traefik's Ingress provider).
ingress-nginx (`nginx_ingress_controller_requests`, labels `namespace` and `service`) and
Envoy Gateway would each be one more class with the same method."""

from __future__ import annotations

import re
from collections import defaultdict

import requests
from prometheus_client.parser import text_string_to_metric_families

from app.usecases.ports import TrafficUnavailable

TIMEOUT_SECONDS = 5.0
TRAEFIK_FAMILY = "traefik_service_requests"  # the counter `..._total`, as the parser names it


class TraefikTraffic:
    def __init__(self, metrics_url: str) -> None:
        self.metrics_url = metrics_url
        self.session = requests.Session()

    def _scrape(self) -> str:
        try:
            response = self.session.get(self.metrics_url, timeout=TIMEOUT_SECONDS)
            response.raise_for_status()
        except requests.RequestException as error:
            raise TrafficUnavailable(f"Traefik's metrics at {self.metrics_url}: {error}") from error
        return response.text

    def requests_to(self, services: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
        return traefik_requests(self._scrape(), services)


def traefik_requests(metrics: str, services: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """Requests Traefik routed to each (namespace, service), summed over codes, methods and
    providers, from its Prometheus text; 0 for one it has routed nothing to since it started."""
    by_label: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(metrics):
        if family.name != TRAEFIK_FAMILY:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                by_label[sample.labels.get("service", "")] += sample.value
    return {wanted: _sum_for(by_label, *wanted) for wanted in services}


# What follows `<namespace>-<service>-` for the app's port (named http, number 80): anything
# else is another Service whose name starts with this one's.
_APP_PORT = re.compile(r"(http-)?\d+|http")


def _sum_for(by_label: dict[str, float], namespace: str, service: str) -> float:
    prefix = f"{namespace}-{service}-"
    total = 0.0
    for label, value in by_label.items():
        name, _, provider = label.partition("@")
        if provider.startswith("kubernetes") and name.startswith(prefix) and _APP_PORT.fullmatch(name[len(prefix) :]):
            total += value
    return total
