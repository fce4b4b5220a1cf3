"""Traefik's request counters as the scheduler reads them, from its own Prometheus text
(recorded on the test bed's node: Traefik v3.6, Gateway provider, one request served)."""

from pathlib import Path

from app.adapters.traffic import traefik_requests

SAMPLE = (Path(__file__).parent.parent / "samples" / "traefik" / "metrics-after-one-request.txt").read_text()
NAMESPACE = "preview-node-served-2f645c-pr-1-a7a2a866efa32cbd"
SERVICE = "node-served-2f645c-preview"


def test_the_requests_routed_to_a_previews_app_are_counted():
    assert traefik_requests(SAMPLE, [(NAMESPACE, SERVICE)]) == {(NAMESPACE, SERVICE): 1.0}


def test_a_service_traefik_never_routed_to_counts_zero():
    assert traefik_requests(SAMPLE, [("preview-other", SERVICE)]) == {("preview-other", SERVICE): 0.0}


def _line(code: str, method: str, service: str, value: int) -> str:
    labels = f'code="{code}",method="{method}",protocol="http",service="{service}"'
    return f"traefik_service_requests_total{{{labels}}} {value}\n"


def test_codes_and_methods_add_up_and_a_longer_service_name_is_another_service():
    label = f"{NAMESPACE}-{SERVICE}"
    text = "# TYPE traefik_service_requests_total counter\n" + "".join(
        [
            _line("200", "GET", f"{label}-http-80@kubernetesgateway", 4),
            _line("304", "GET", f"{label}-http-80@kubernetesgateway", 2),
            _line("200", "POST", f"{label}-http@kubernetes", 1),  # the Ingress provider's name
            _line("200", "GET", f"{label}-redis-6379@kubernetes", 9),  # an extra service: not the app
            _line("200", "GET", f"{label}-http-80@file", 5),  # not from the cluster
        ]
    )
    assert traefik_requests(text, [(NAMESPACE, SERVICE)]) == {(NAMESPACE, SERVICE): 7.0}
