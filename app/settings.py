"""Typed settings: the only place that reads the environment.

`Settings.from_env()` coerces and validates every variable once, at start-up.
A bad value raises `SettingsError` naming the variable, so a process refuses to
start instead of failing later on its first request or job.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

T = TypeVar("T")

_DURATION_PART = re.compile(r"(\d+)([smhd])")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


def parse_duration(text: str) -> timedelta:
    """Parse durations such as `168h`, `90m`, `1d12h` or a bare number of seconds."""
    text = text.strip().lower()
    if text.isdigit():
        if int(text) == 0:
            raise ValueError("a duration must be positive")
        return timedelta(seconds=int(text))
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration like 168h, 90m or 1d12h")
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_DURATION_UNITS[unit]: int(number)})
    if total <= timedelta():
        raise ValueError("a duration must be positive")
    return total


def _duration_or_never(text: str) -> timedelta | None:
    """A duration, or `0` for never."""
    return None if text == "0" else parse_duration(text)


def _duration_or_zero(text: str) -> timedelta:
    """A duration, or `0` for none at all."""
    return timedelta() if text.strip() == "0" else parse_duration(text)


def _ipv4_endpoint(text: str) -> tuple[str, int]:
    """`10.0.0.5:8000`: an EndpointSlice holds addresses, not names."""
    host, _, port = text.rpartition(":")
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address and port such as 10.0.0.5:8000") from None
    if address.is_loopback or address.is_link_local or address.is_unspecified:
        raise ValueError(f"{host} is not an address the data plane can be sent to")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r} has no port between 1 and 65535")
    return str(address), int(port)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError("must be a positive whole number")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise ValueError("must be a whole number, 0 or more")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError("must be a TCP port, 1 to 65535")
    return int(text)


def _url(*schemes: str) -> Callable[[str], str]:
    def coerce(text: str) -> str:
        scheme = text.split("://", 1)[0] if "://" in text else ""
        if scheme not in schemes:
            raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return text.rstrip("/") if scheme.startswith("http") else text

    return coerce


def _domain(text: str) -> str:
    text = text.strip().lower().rstrip(".")
    labels = text.split(".")
    if not all(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", label) for label in labels):
        raise ValueError("must be a DNS name such as preview.example.com")
    return text


def _token_list(text: str) -> tuple[str, ...]:
    tokens = tuple(t.strip() for t in text.split(",") if t.strip())
    if any(len(t) < 16 for t in tokens):
        raise ValueError("each token must be at least 16 characters")
    return tokens


def _patterns(text: str) -> tuple[str, ...]:
    patterns = tuple(p.strip() for p in text.split(",") if p.strip())
    if not patterns:
        raise ValueError("must name at least one branch pattern, such as task/*")
    return patterns


def _image_prefixes(text: str) -> tuple[str, ...]:
    prefixes = tuple(p.strip() for p in text.split(",") if p.strip())
    if not prefixes or any(not p.endswith(("/", ":", "@")) for p in prefixes):
        raise ValueError("must list image prefixes ending in / (registry.example.com/team/), comma-separated")
    return prefixes


def _cidrs(text: str) -> tuple[str, ...]:
    found = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            found.append(str(ipaddress.ip_network(part, strict=True)))
        except ValueError:
            raise ValueError(f"{part!r} is not a CIDR such as 10.0.0.0/8") from None
    return tuple(found)


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number such as 0.04") from None
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _dns_label(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", text):
        raise ValueError("must be a lowercase DNS label (letters, digits, '-'; at most 63)")
    return text


def _quantity(text: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?", text):
        raise ValueError("must be a Kubernetes quantity such as 500m, 1, 512Mi or 2Gi")
    return text


def _choice(*choices: str) -> Callable[[str], str]:
    def coerce(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return coerce


SECRET_MIN_LENGTH = 16


def _secret(text: str) -> str:
    if len(text) < SECRET_MIN_LENGTH:
        raise ValueError(f"must be at least {SECRET_MIN_LENGTH} characters (try: openssl rand -hex 24)")
    return text


def _namespaced_name(text: str) -> str:
    namespace, _, name = text.partition("/")
    try:
        _dns_label(namespace), _dns_label(name)
    except ValueError:
        raise ValueError("must be namespace/name, both lowercase DNS labels") from None
    return text


def _check_gitea_access(values: dict[str, Any]) -> None:
    """PREVIEW_ACCESS=gitea needs its OAuth2 application and a routing that can ask us."""
    needed = {
        "gitea_url": "GITEA_URL",
        "oauth_client_id": "PREVIEW_OAUTH_CLIENT_ID",
        "oauth_client_secret": "PREVIEW_OAUTH_CLIENT_SECRET",
        "session_secret": "PREVIEW_SESSION_SECRET",
    }
    missing = [variable for field, variable in needed.items() if not values.get(field)]
    if missing:
        raise SettingsError(f"PREVIEW_ACCESS=gitea needs {', '.join(missing)}")
    routing = values.get("routing", "ingress-nginx")
    if routing == "gateway-nginx":
        raise SettingsError(
            "PREVIEW_ACCESS=gitea: NGINX Gateway Fabric asks an auth service only through the Gateway API's"
            " experimental ExternalAuth filter, not supported here yet; use basic, or another routing"
        )
    if routing == "gateway-envoy":
        raise SettingsError(
            "PREVIEW_ACCESS=gitea: Envoy Gateway's extAuth passes on neither the preview's cookie nor"
            " its sign-in ticket unless widened, which is not tested here yet; use basic, or another routing"
        )


# The routings app/domain/k8s/routing.py knows (kept here: settings import nothing of the app).
ROUTINGS = ("ingress-nginx", "gateway-nginx", "gateway-envoy", "gateway-traefik")


def _address(text: str) -> str:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be host:port, such as db.internal:5432")
    return text


def _identifier_prefix(text: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,15}", text):
        raise ValueError("must be lowercase letters, digits and '_', starting with a letter, at most 16")
    return text


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


@dataclasses.dataclass(frozen=True)
class Settings:
    # Both may carry a password: never in a repr (a test's failure, a log line).
    database_url: str = dataclasses.field(default="sqlite:///var/preview.db", repr=False)
    redis_url: str = dataclasses.field(default="redis://localhost:6379/0", repr=False)
    gitea_url: str | None = None
    gitea_token: str | None = dataclasses.field(default=None, repr=False)
    gitea_webhook_secret: str | None = dataclasses.field(default=None, repr=False)
    # When set, GET /metrics wants `Authorization: Bearer <METRICS_TOKEN>`; without it /metrics
    # is closed unless the operator opens it on purpose (it names repositories and counts).
    metrics_token: str | None = dataclasses.field(default=None, repr=False)
    metrics_open: bool = False
    preview_domain: str = "preview.localhost"
    preview_ttl: timedelta = timedelta(hours=168)
    # A preview whose deploy failed still holds a namespace and a slot: it goes sooner.
    failed_preview_ttl: timedelta = timedelta(hours=24)
    # The longest TTL a repository's preview file may ask for.
    max_preview_ttl: timedelta = timedelta(days=14)
    preview_registry: str | None = None
    kubeconfig: str | None = None
    max_active_previews: int | None = None
    api_tokens: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    task_branch_patterns: tuple[str, ...] = ("task/*",)
    queue_name: str = "previews"
    # One worker acts on a preview at a time: it holds a lease this long, renewed while it works,
    # so the work of a worker that died resumes about this long after.
    lease_ttl: timedelta = timedelta(seconds=60)
    # Work nobody holds a lease on (its job was lost, or its worker died before taking the
    # lease) is queued again after this long without progress; a duplicate job is harmless.
    stalled_after: timedelta = timedelta(minutes=2)
    scheduler_interval: timedelta = timedelta(seconds=15)
    # Gitea is told every state, however long it is down: a failed report is tried again
    # after report_retry_min, doubling up to report_retry_max, with no deadline.
    report_retry_min: timedelta = timedelta(seconds=10)
    report_retry_max: timedelta = timedelta(minutes=5)
    max_webhook_bytes: int = 5 * 1024 * 1024
    # Where this service is reachable: links to its own page for a preview.
    public_url: str = "http://127.0.0.1:8000"
    # Proxies in front of the web process whose X-Forwarded-For and -Proto are believed (ProxyFix).
    trusted_proxy_hops: int = 1
    # The port previews are served on, when not their scheme's default (a test bed's proxy):
    # a sign-in sends the browser back to a preview on no other port.
    preview_port: int | None = None
    # How reviewers reach previews: https, but for a demo without TLS at its ingress (`make run`).
    preview_scheme: str = "https"
    # Build: kaniko Jobs run here (not PodSecurity "restricted": kaniko runs as root).
    build_namespace: str = "preview-builds"
    builder_image: str = "ghcr.io/osscontainertools/kaniko:v1.27.6"
    # Fetches the source at the commit before the build, holding the git credentials kaniko never sees.
    source_image: str = "alpine/git:2.47.2"
    registry_insecure: bool = False
    # Push with the shared registry Secret when a repository has none of its own. Off: that
    # Secret can push (and pull) every repository's images, and a build's RUN can read it.
    registry_shared_fallback: bool = False
    # Prefixes a preview file's `image:` must start with (default: PREVIEW_REGISTRY's).
    allowed_images: tuple[str, ...] = ()
    build_timeout: timedelta = timedelta(minutes=30)
    build_concurrency: int = 4  # builds at once: the build namespace's ResourceQuota
    rollout_timeout: timedelta = timedelta(seconds=300)
    # How previews are reached (app/domain/k8s/routing.py): ingress-nginx annotations, or an
    # HTTPRoute on PREVIEW_GATEWAY ("namespace/name") with the controller's own auth object.
    routing: str = "ingress-nginx"
    gateway: str | None = None
    # Who gets in: basic (a password per preview), gitea (sign in with Gitea; those who can
    # read the repository) or public (anyone with the URL: demos only).
    access: str = "basic"
    # Sign-in with Gitea: the OAuth2 application registered in Gitea (redirect URI
    # <PUBLIC_URL>/auth/callback), the key that signs cookies, and how long a "can read" holds.
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = dataclasses.field(default=None, repr=False)
    session_secret: str | None = dataclasses.field(default=None, repr=False)
    access_cache_ttl: timedelta = timedelta(seconds=60)
    # Where the proxies reach this service's forward-auth endpoints (default PUBLIC_URL), and for
    # Envoy Gateway, its Service as namespace/name:port.
    auth_url: str | None = None
    # Ingress and isolation.
    ingress_class: str = "nginx"
    ingress_tls_secret: str | None = None
    cert_manager_issuer: str | None = None
    ingress_controller_namespace: str = "ingress-nginx"
    pod_security_level: str = "baseline"
    # Egress from previews and builds: the internet and DNS, not these (the metadata address,
    # private ranges where pod and service CIDRs and the API server usually live).
    egress_denied_cidrs: tuple[str, ...] = (
        "169.254.0.0/16",
        "168.63.129.16/32",  # Azure's WireServer: a host's agent channel, not on the link-local range
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "fc00::/7",
        "fe80::/10",
    )
    # What builds may reach beyond that: the registry and Gitea, when they are inside.
    build_egress_allowed_cidrs: tuple[str, ...] = ()
    # Per-namespace ResourceQuota (the seed's defaults).
    quota_requests_cpu: str = "500m"
    quota_requests_memory: str = "1Gi"
    # Room for the app during a rolling update (two pods), its in-namespace database and a
    # migrate Job at their default limits (500m each); found short on the real node at 1.
    quota_limits_cpu: str = "2"
    quota_limits_memory: str = "2Gi"
    quota_ephemeral_storage: str = "5Gi"
    quota_pods: int = 5
    quota_services: int = 3
    # Show the preview password in the PR comment (never for public repositories).
    comment_password: bool = False
    # Least privilege (the chart sets these): in each preview namespace the worker binds
    # PREVIEW_CLUSTER_ROLE to its own ServiceAccount and PREVIEW_READER_CLUSTER_ROLE to the
    # web's ("namespace/name"); it holds no rights in other namespaces. Unset: no bindings.
    controller_service_account: str | None = None
    web_service_account: str | None = None
    preview_cluster_role: str | None = None
    preview_reader_cluster_role: str | None = None
    # PRs from forks or from authors without write access: wait for a maintainer's
    # approval of each commit (approve), are never built (never), or build at once (build).
    untrusted_prs: str = "approve"
    # Databases a preview file asks for. With an admin URL, each preview gets a database and a
    # role on that shared server; without one, a server of the official image in its namespace.
    postgres_admin_url: str | None = dataclasses.field(default=None, repr=False)
    mysql_admin_url: str | None = dataclasses.field(default=None, repr=False)
    # host:port previews use to reach the shared server, when it differs from the admin URL's.
    postgres_app_address: str | None = None
    mysql_app_address: str | None = None
    # Every preview database and role is named <prefix><preview id>; the orphan sweep drops
    # only names of that shape, so two installations sharing a server need two prefixes.
    database_prefix: str = "preview_"
    # Where the shared servers are, for the previews' egress (private ranges are denied otherwise).
    database_egress_cidrs: tuple[str, ...] = ()
    # The in-namespace servers' images; a preview file's database.version replaces the tag.
    postgres_image: str = "postgres:17"
    mysql_image: str = "mysql:8.4"
    database_storage: str = "1Gi"
    database_storage_class: str | None = None
    # Cost estimate (stats): prices per requested core-hour and GiB-hour, and the alert threshold.
    price_cpu_core_hour: float = 0.04
    price_memory_gb_hour: float = 0.005
    cost_currency: str = "USD"
    active_alert_threshold: int = 50
    # What one repository's previews may spend in a calendar month (UTC), in cost_currency;
    # None: no budget. `flask repos budget` sets one repository's in its place.
    budget_per_repository: float | None = None
    # Traefik's Prometheus endpoint, read by the scheduler to see which previews are visited
    # (app/adapters/traffic.py).
    traffic_metrics_url: str | None = None
    # The ingress controller's or gateway's entrypoint for previews, as this service reaches
    # it (http://host:port): with it a deploy is reported ready only once a request there for
    # the preview's host (with its password) reaches the app. None: not asked.
    ingress_url: str | None = None
    # A ready preview nobody visited for this long sleeps (None: never); a preview file may
    # ask for less. Only with traffic_metrics_url (visits are read, not guessed) and
    # wake_endpoint (where a sleeping preview's route leads).
    preview_idle_after: timedelta | None = timedelta(minutes=30)
    # The web's address as the data plane reaches it (IPv4:port): a sleeping preview's app
    # Service gets an EndpointSlice of ours pointing there, to the wake page.
    wake_endpoint: tuple[str, int] | None = None
    # Headless Chromium's image: with it, a ready preview's pages (its preview file's
    # `screenshots`) are screenshot by a Job in its namespace and shown in the PR comment,
    # with what changed since the base branch's preview or the PR's previous commit. None: off.
    screenshot_image: str | None = None
    screenshot_timeout: timedelta = timedelta(minutes=3)  # the Job's deadline
    # How long Gitea must keep answering 404 for a repository with live previews before they
    # are torn down: a deleted repository and one the bot lost access to look alike (0: at once).
    repository_gone_after: timedelta = timedelta(hours=24)

    @property
    def sleeping_on(self) -> bool:
        """Previews may sleep: idleness is read from the data plane and a wake page is reachable
        (whose visitors the web can check: the preview's password, or none; not a Gitea sign-in)."""
        return bool(self.traffic_metrics_url and self.wake_endpoint) and self.access != "gitea"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}

        def maybe_set(field: str, variable: str, coerce: Callable[[str], Any] = str) -> None:
            raw = env.get(variable)
            if raw is None or raw.strip() == "":
                return
            try:
                values[field] = coerce(raw.strip())
            except ValueError as error:
                raise SettingsError(f"{variable}: {error}") from None

        maybe_set("database_url", "DATABASE_URL", _url("sqlite", "postgres", "postgresql"))
        maybe_set("redis_url", "REDIS_URL", _url("redis", "rediss", "unix"))
        maybe_set("gitea_url", "GITEA_URL", _url("http", "https"))
        maybe_set("gitea_token", "GITEA_TOKEN")
        maybe_set("gitea_webhook_secret", "GITEA_WEBHOOK_SECRET", _secret)
        maybe_set("metrics_token", "METRICS_TOKEN", _secret)
        maybe_set("metrics_open", "METRICS_OPEN", _bool)
        maybe_set("preview_domain", "PREVIEW_DOMAIN", _domain)
        maybe_set("preview_ttl", "PREVIEW_TTL", parse_duration)
        maybe_set("failed_preview_ttl", "FAILED_PREVIEW_TTL", parse_duration)
        maybe_set("lease_ttl", "PREVIEW_LEASE_TTL", parse_duration)
        maybe_set("scheduler_interval", "SCHEDULER_INTERVAL", parse_duration)
        maybe_set("stalled_after", "STALLED_AFTER", parse_duration)
        maybe_set("report_retry_min", "REPORT_RETRY_MIN", parse_duration)
        maybe_set("report_retry_max", "REPORT_RETRY_MAX", parse_duration)
        maybe_set("max_preview_ttl", "PREVIEW_MAX_TTL", parse_duration)
        maybe_set("preview_registry", "PREVIEW_REGISTRY")
        maybe_set("kubeconfig", "KUBECONFIG")
        maybe_set("max_active_previews", "MAX_ACTIVE_PREVIEWS", _positive_int)
        maybe_set("api_tokens", "API_TOKENS", _token_list)
        maybe_set("task_branch_patterns", "TASK_BRANCH_PATTERNS", _patterns)
        maybe_set("queue_name", "PREVIEW_QUEUE")
        maybe_set("public_url", "PUBLIC_URL", _url("http", "https"))
        maybe_set("preview_port", "PREVIEW_PORT", _port)
        maybe_set("preview_scheme", "PREVIEW_SCHEME", _choice("https", "http"))
        maybe_set("trusted_proxy_hops", "TRUSTED_PROXY_HOPS", _count)
        maybe_set("build_namespace", "BUILD_NAMESPACE", _dns_label)
        maybe_set("builder_image", "BUILDER_IMAGE")
        maybe_set("source_image", "SOURCE_IMAGE")
        maybe_set("registry_insecure", "PREVIEW_REGISTRY_INSECURE", _bool)
        maybe_set("registry_shared_fallback", "REGISTRY_SHARED_FALLBACK", _bool)
        maybe_set("allowed_images", "PREVIEW_ALLOWED_IMAGES", _image_prefixes)
        maybe_set("build_timeout", "BUILD_TIMEOUT", parse_duration)
        maybe_set("build_concurrency", "BUILD_CONCURRENCY", _positive_int)
        maybe_set("rollout_timeout", "ROLLOUT_TIMEOUT", parse_duration)
        maybe_set("routing", "PREVIEW_ROUTING", _choice(*ROUTINGS))
        maybe_set("gateway", "PREVIEW_GATEWAY", _namespaced_name)
        maybe_set("access", "PREVIEW_ACCESS", _choice("basic", "gitea", "public"))
        maybe_set("oauth_client_id", "PREVIEW_OAUTH_CLIENT_ID")
        maybe_set("oauth_client_secret", "PREVIEW_OAUTH_CLIENT_SECRET")
        maybe_set("session_secret", "PREVIEW_SESSION_SECRET", _secret)
        maybe_set("access_cache_ttl", "PREVIEW_ACCESS_CACHE_TTL", parse_duration)
        maybe_set("auth_url", "PREVIEW_AUTH_URL", _url("http", "https"))
        maybe_set("ingress_class", "INGRESS_CLASS")
        maybe_set("ingress_tls_secret", "INGRESS_TLS_SECRET", _dns_label)
        maybe_set("cert_manager_issuer", "CERT_MANAGER_CLUSTER_ISSUER")
        maybe_set("ingress_controller_namespace", "INGRESS_CONTROLLER_NAMESPACE", _dns_label)
        maybe_set("pod_security_level", "PREVIEW_POD_SECURITY", _choice("privileged", "baseline", "restricted"))
        maybe_set("egress_denied_cidrs", "EGRESS_DENIED_CIDRS", _cidrs)
        maybe_set("build_egress_allowed_cidrs", "BUILD_EGRESS_ALLOWED_CIDRS", _cidrs)
        maybe_set("quota_requests_cpu", "QUOTA_REQUESTS_CPU", _quantity)
        maybe_set("quota_requests_memory", "QUOTA_REQUESTS_MEMORY", _quantity)
        maybe_set("quota_limits_cpu", "QUOTA_LIMITS_CPU", _quantity)
        maybe_set("quota_limits_memory", "QUOTA_LIMITS_MEMORY", _quantity)
        maybe_set("quota_ephemeral_storage", "QUOTA_EPHEMERAL_STORAGE", _quantity)
        maybe_set("quota_pods", "QUOTA_PODS", _positive_int)
        maybe_set("quota_services", "QUOTA_SERVICES", _positive_int)
        maybe_set("comment_password", "COMMENT_PASSWORD", _bool)
        maybe_set("untrusted_prs", "UNTRUSTED_PRS", _choice("approve", "never", "build"))
        maybe_set("controller_service_account", "CONTROLLER_SERVICE_ACCOUNT", _namespaced_name)
        maybe_set("web_service_account", "WEB_SERVICE_ACCOUNT", _namespaced_name)
        maybe_set("preview_cluster_role", "PREVIEW_CLUSTER_ROLE")
        maybe_set("preview_reader_cluster_role", "PREVIEW_READER_CLUSTER_ROLE")
        maybe_set("postgres_admin_url", "PREVIEW_POSTGRES_ADMIN_URL", _url("postgres", "postgresql"))
        maybe_set("mysql_admin_url", "PREVIEW_MYSQL_ADMIN_URL", _url("mysql", "mariadb"))
        maybe_set("postgres_app_address", "PREVIEW_POSTGRES_APP_ADDRESS", _address)
        maybe_set("mysql_app_address", "PREVIEW_MYSQL_APP_ADDRESS", _address)
        maybe_set("database_prefix", "PREVIEW_DATABASE_PREFIX", _identifier_prefix)
        maybe_set("database_egress_cidrs", "DATABASE_EGRESS_CIDRS", _cidrs)
        maybe_set("postgres_image", "POSTGRES_IMAGE")
        maybe_set("mysql_image", "MYSQL_IMAGE")
        maybe_set("database_storage", "DATABASE_STORAGE", _quantity)
        maybe_set("database_storage_class", "DATABASE_STORAGE_CLASS", _dns_label)
        maybe_set("price_cpu_core_hour", "PRICE_CPU_CORE_HOUR", _price)
        maybe_set("price_memory_gb_hour", "PRICE_MEMORY_GB_HOUR", _price)
        maybe_set("cost_currency", "COST_CURRENCY")
        maybe_set("budget_per_repository", "PREVIEW_BUDGET_PER_REPOSITORY", _price)
        maybe_set("traffic_metrics_url", "TRAFFIC_METRICS_URL", _url("http", "https"))
        maybe_set("ingress_url", "PREVIEW_INGRESS_URL", _url("http"))
        maybe_set("preview_idle_after", "PREVIEW_IDLE_AFTER", _duration_or_never)
        maybe_set("wake_endpoint", "WAKE_ENDPOINT", _ipv4_endpoint)
        maybe_set("screenshot_image", "SCREENSHOT_IMAGE")
        maybe_set("screenshot_timeout", "SCREENSHOT_TIMEOUT", parse_duration)
        maybe_set("repository_gone_after", "REPOSITORY_GONE_AFTER", _duration_or_zero)
        maybe_set("active_alert_threshold", "ACTIVE_ALERT_THRESHOLD", _positive_int)
        for account, role in (
            ("CONTROLLER_SERVICE_ACCOUNT", "PREVIEW_CLUSTER_ROLE"),
            ("WEB_SERVICE_ACCOUNT", "PREVIEW_READER_CLUSTER_ROLE"),
        ):
            if bool(env.get(account, "").strip()) != bool(env.get(role, "").strip()):
                raise SettingsError(f"{account} and {role} go together: set both or neither")
        if values.get("routing", "ingress-nginx") != "ingress-nginx" and not values.get("gateway"):
            raise SettingsError("PREVIEW_GATEWAY: the Gateway (namespace/name) is required with a gateway routing")
        if values.get("access") == "gitea":
            _check_gitea_access(values)
        settings = cls(**values)
        settings.check_timings()
        return settings

    def check_timings(self) -> None:
        """Durations that only make sense together; SettingsError names the pair."""
        rules = [
            (
                self.lease_ttl >= timedelta(seconds=3),
                "PREVIEW_LEASE_TTL must be at least 3s: it is renewed every third",
            ),
            (
                self.stalled_after > self.lease_ttl,
                "STALLED_AFTER must be longer than PREVIEW_LEASE_TTL: work a live worker holds would be resumed",
            ),
            (
                self.scheduler_interval < self.stalled_after,
                "SCHEDULER_INTERVAL must be shorter than STALLED_AFTER: stalls would wait a whole pass more",
            ),
            (
                self.preview_ttl <= self.max_preview_ttl,
                "PREVIEW_TTL must not be longer than PREVIEW_MAX_TTL, the longest a preview file may ask for",
            ),
            (
                self.failed_preview_ttl <= self.preview_ttl,
                "FAILED_PREVIEW_TTL must not be longer than PREVIEW_TTL: a failed preview goes sooner",
            ),
            (
                self.report_retry_min <= self.report_retry_max,
                "REPORT_RETRY_MIN must not be longer than REPORT_RETRY_MAX",
            ),
        ]
        for holds, message in rules:
            if not holds:
                raise SettingsError(message)

    @property
    def job_timeout(self) -> timedelta:
        """How long one job may run before RQ stops it (and the scheduler resumes its preview):
        a build, the app's rollout and a database server's, and ten minutes for the rest."""
        return self.build_timeout + 2 * self.rollout_timeout + timedelta(minutes=10)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def is_task_branch(self, branch: str) -> bool:
        return any(fnmatch.fnmatchcase(branch, pattern) for pattern in self.task_branch_patterns)
