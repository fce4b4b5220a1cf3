from datetime import timedelta

import pytest

from app.settings import Settings, SettingsError, parse_duration


def test_defaults_match_the_documented_interface():
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///var/preview.db"
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.preview_domain == "preview.localhost"
    assert settings.preview_ttl == timedelta(hours=168)
    assert settings.task_branch_patterns == ("task/*",)
    assert settings.gitea_webhook_secret is None
    assert settings.max_active_previews is None
    assert settings.budget_per_repository is None
    assert settings.preview_idle_after == timedelta(minutes=30)
    assert not settings.sleeping_on  # no data plane to read visits from, no wake page
    assert settings.repository_gone_after == timedelta(hours=24)


def test_values_are_coerced():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@db/previews",
            "GITEA_URL": "https://git.example.com/",
            "PREVIEW_DOMAIN": "Preview.Example.COM.",
            "PREVIEW_TTL": "1d12h",
            "MAX_ACTIVE_PREVIEWS": "20",
            "API_TOKENS": "a" * 20 + ", " + "b" * 20,
            "TASK_BRANCH_PATTERNS": "task/*, agent/*",
            "PREVIEW_BUDGET_PER_REPOSITORY": "40.5",
            "TRAFFIC_METRICS_URL": "http://traefik-metrics.traefik:8082/metrics",
            "PREVIEW_IDLE_AFTER": "45m",
            "WAKE_ENDPOINT": "10.96.0.20:8000",
            "REPOSITORY_GONE_AFTER": "0",
            "PREVIEW_INGRESS_URL": "http://traefik.traefik:80/",
        }
    )
    assert settings.ingress_url == "http://traefik.traefik:80"
    assert settings.repository_gone_after == timedelta()  # at once
    assert settings.preview_idle_after == timedelta(minutes=45)
    assert settings.wake_endpoint == ("10.96.0.20", 8000)
    assert settings.sleeping_on
    assert settings.traffic_metrics_url == "http://traefik-metrics.traefik:8082/metrics"
    assert settings.budget_per_repository == 40.5
    assert settings.gitea_url == "https://git.example.com"
    assert settings.preview_domain == "preview.example.com"
    assert settings.preview_ttl == timedelta(days=1, hours=12)
    assert settings.max_active_previews == 20
    assert settings.api_tokens == ("a" * 20, "b" * 20)
    assert settings.is_task_branch("agent/fix-42")
    assert not settings.is_task_branch("feature/x")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://x/y"),
        ("REDIS_URL", "localhost:6379"),
        ("GITEA_URL", "git.example.com"),
        ("PREVIEW_DOMAIN", "under_score.example"),
        ("PREVIEW_TTL", "a week"),
        ("PREVIEW_TTL", "0h"),
        ("PREVIEW_TTL", "0"),
        ("PREVIEW_TTL", "-5"),
        ("FAILED_PREVIEW_TTL", "0"),
        ("FAILED_PREVIEW_TTL", "-1h"),
        ("PREVIEW_LEASE_TTL", "0s"),
        ("SCHEDULER_INTERVAL", "0"),
        ("BUILD_TIMEOUT", "0m"),
        ("ROLLOUT_TIMEOUT", "0"),
        ("MAX_ACTIVE_PREVIEWS", "0"),
        ("MAX_ACTIVE_PREVIEWS", "many"),
        ("PREVIEW_BUDGET_PER_REPOSITORY", "-3"),
        ("PREVIEW_BUDGET_PER_REPOSITORY", "10 USD"),
        ("TRAFFIC_METRICS_URL", "traefik:8082/metrics"),
        ("PREVIEW_IDLE_AFTER", "soon"),
        ("REPOSITORY_GONE_AFTER", "-1h"),
        ("PREVIEW_INGRESS_URL", "https://traefik.traefik"),
        ("WAKE_ENDPOINT", "previews-web:8000"),
        ("WAKE_ENDPOINT", "10.0.0.5"),
        ("WAKE_ENDPOINT", "127.0.0.1:8000"),
        ("WAKE_ENDPOINT", "169.254.169.254:80"),
        ("API_TOKENS", "short"),
        ("TASK_BRANCH_PATTERNS", " , "),
        ("EGRESS_DENIED_CIDRS", "10.0.0.1/8"),
        ("BUILD_EGRESS_ALLOWED_CIDRS", "gitea.internal"),
    ],
)
def test_invalid_values_name_the_variable(variable, value):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({variable: value})
    assert str(error.value).startswith(f"{variable}: ")


def test_secrets_stay_out_of_repr():
    settings = Settings.from_env({"GITEA_TOKEN": "tok-123456", "GITEA_WEBHOOK_SECRET": "hook-secret-0123456789"})
    assert "tok-123456" not in repr(settings)
    assert "hook-secret-0123456789" not in repr(settings)
    assert "metrics-token-0123456789" not in repr(Settings(metrics_token="metrics-token-0123456789"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("168h", timedelta(hours=168)),
        ("90m", timedelta(minutes=90)),
        ("45", timedelta(seconds=45)),
        ("2d", timedelta(days=2)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "h", "1h30", "-1h", "1w", "0", "0s", "0d0h"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_egress_cidr_lists_are_parsed_and_normalised():
    settings = Settings.from_env(
        {"EGRESS_DENIED_CIDRS": "169.254.0.0/16, 10.96.0.0/12", "BUILD_EGRESS_ALLOWED_CIDRS": ""}
    )
    assert settings.egress_denied_cidrs == ("169.254.0.0/16", "10.96.0.0/12")
    assert settings.build_egress_allowed_cidrs == ()


def test_a_service_account_and_its_role_go_together():
    both = Settings.from_env(
        {"CONTROLLER_SERVICE_ACCOUNT": "previews/previews", "PREVIEW_CLUSTER_ROLE": "previews-preview"}
    )
    assert both.controller_service_account == "previews/previews"
    with pytest.raises(SettingsError, match="CONTROLLER_SERVICE_ACCOUNT and PREVIEW_CLUSTER_ROLE go together"):
        Settings.from_env({"CONTROLLER_SERVICE_ACCOUNT": "previews/previews"})
    with pytest.raises(SettingsError, match="WEB_SERVICE_ACCOUNT: must be namespace/name"):
        Settings.from_env({"WEB_SERVICE_ACCOUNT": "previews", "PREVIEW_READER_CLUSTER_ROLE": "r"})
    with pytest.raises(SettingsError, match="UNTRUSTED_PRS"):
        Settings.from_env({"UNTRUSTED_PRS": "sometimes"})


@pytest.mark.parametrize("variable", ["GITEA_WEBHOOK_SECRET", "METRICS_TOKEN"])
def test_short_secrets_are_refused_at_start_up(variable):
    with pytest.raises(SettingsError, match=f"{variable}: must be at least 16 characters"):
        Settings.from_env({variable: "short-secret"})
    assert Settings.from_env({variable: "x" * 16})


def test_a_preview_file_names_images_from_the_preview_registry_unless_told_otherwise():
    from app.usecases.deploy.preview_config import image_allowed

    default = Settings.from_env({"PREVIEW_REGISTRY": "registry.example.com/previews"})
    assert image_allowed(default, "registry.example.com/previews/acme-shop@sha256:" + "a" * 64)
    assert not image_allowed(default, "registry.example.com/previewsX/app:1")
    assert not image_allowed(default, "docker.io/library/alpine:3")
    assert not image_allowed(Settings(), "docker.io/library/alpine:3")  # no registry: no image from a file
    chosen = Settings.from_env({"PREVIEW_ALLOWED_IMAGES": "ghcr.io/acme/, registry.example.com/base/"})
    assert image_allowed(chosen, "ghcr.io/acme/app:2")
    assert not image_allowed(chosen, "ghcr.io/other/app:2")
    with pytest.raises(SettingsError, match="PREVIEW_ALLOWED_IMAGES"):
        Settings.from_env({"PREVIEW_ALLOWED_IMAGES": "ghcr.io"})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PREVIEW_LEASE_TTL": "2s"}, "PREVIEW_LEASE_TTL must be at least 3s"),
        ({"PREVIEW_LEASE_TTL": "5m", "STALLED_AFTER": "2m"}, "STALLED_AFTER must be longer than PREVIEW_LEASE_TTL"),
        ({"SCHEDULER_INTERVAL": "5m"}, "SCHEDULER_INTERVAL must be shorter than STALLED_AFTER"),
        ({"PREVIEW_TTL": "30d"}, "PREVIEW_TTL must not be longer than PREVIEW_MAX_TTL"),
        ({"FAILED_PREVIEW_TTL": "200h"}, "FAILED_PREVIEW_TTL must not be longer than PREVIEW_TTL"),
        ({"REPORT_RETRY_MIN": "10m"}, "REPORT_RETRY_MIN must not be longer than REPORT_RETRY_MAX"),
    ],
)
def test_durations_that_contradict_each_other_are_refused_at_start(environ, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def test_a_job_may_run_as_long_as_a_build_and_two_rollouts_and_no_longer():
    settings = Settings.from_env({"BUILD_TIMEOUT": "20m", "ROLLOUT_TIMEOUT": "5m"})
    assert settings.job_timeout == timedelta(minutes=40)


def test_previews_sleep_only_where_visits_are_read_and_the_wake_page_is_reachable():
    both = {"TRAFFIC_METRICS_URL": "http://traefik:8082/metrics", "WAKE_ENDPOINT": "10.96.0.20:8000"}
    assert Settings.from_env(both).sleeping_on
    assert Settings.from_env({**both, "PREVIEW_IDLE_AFTER": "0"}).preview_idle_after is None
    assert not Settings.from_env({"WAKE_ENDPOINT": "10.96.0.20:8000"}).sleeping_on
    assert not Settings.from_env({"TRAFFIC_METRICS_URL": "http://traefik:8082/metrics"}).sleeping_on
