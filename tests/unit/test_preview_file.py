"""The preview file's schema: what it accepts, and errors that name the field and its line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.preview_file import Limits, PreviewFileError, parse, quantity
from app.usecases.deploy.preview_config import resolve

LIMITS = Limits(
    max_replicas=5,
    max_ttl=timedelta(days=14),
    quota={"requests.cpu": "500m", "requests.memory": "1Gi", "limits.cpu": "1", "limits.memory": "2Gi"},
    max_idle_after=timedelta(minutes=30),
)

FULL = """\
version: 1
build:
  context: web
  dockerfile: docker/Dockerfile.preview
  target: runtime
  args:
    NODE_ENV: production
port: 3000
health_path: /healthz
env:
  FEATURE_FLAGS: "beta"
  DEBUG: true
resources:
  requests: {cpu: 100m, memory: 256Mi}
  limits: {cpu: 300m, memory: 512Mi}
replicas: 2
ttl: 48h
database:
  engine: postgres
  version: "16"
  migrate: npm run migrate
  seed: [node, scripts/seed.js]
services:
  - name: redis
    image: redis:7
    port: 6379
previews:
  pull_requests: true
  branches: ["task/*", "demo/*"]
"""


def test_a_full_file_is_read_field_by_field():
    found = parse(FULL, LIMITS)
    assert found.build is not None
    assert (found.build.context, found.build.dockerfile, found.build.target) == (
        "web",
        "docker/Dockerfile.preview",
        "runtime",
    )
    assert found.build.args == {"NODE_ENV": "production"}
    assert (found.port, found.health_path, found.replicas, found.ttl) == (3000, "/healthz", 2, timedelta(hours=48))
    assert found.env == {"FEATURE_FLAGS": "beta", "DEBUG": "true"}
    assert found.requests == {"cpu": "100m", "memory": "256Mi"}
    assert found.limits["memory"] == "512Mi"
    assert found.database is not None
    assert found.database.engine == "postgres"
    assert found.database.version == "16"
    assert found.database.migrate == ("/bin/sh", "-c", "npm run migrate")
    assert found.database.seed == ("node", "scripts/seed.js")
    assert [(s.name, s.image, s.port) for s in found.services] == [("redis", "redis:7", 6379)]
    assert found.pull_requests is True
    assert found.branches == ("task/*", "demo/*")


def test_an_empty_file_changes_nothing():
    assert parse("", LIMITS) == parse("# nothing yet\n", LIMITS)
    assert parse("", LIMITS).port is None


@pytest.mark.parametrize(
    ("text", "where", "line"),
    [
        ("port: 3000\nprot: 3001\n", "prot", 2),
        ("port: http\n", "port", 1),
        ("port: 70000\n", "port", 1),
        ("env:\n  A: 1\n  1BAD: x\n", "env.1BAD", 3),
        ("env:\n  DATABASE_URL: postgres://elsewhere\n", "env.DATABASE_URL", 2),
        ("replicas: 9\n", "replicas", 1),
        ("resources:\n  requests: {cpu: 200m}\nreplicas: 2\n", "replicas", 3),
        ("resources:\n  requests: {cpu: 300m}\n", "resources.requests.cpu", 2),
        ("ttl: 90d\n", "ttl", 1),
        ("ttl: soon\n", "ttl", 1),
        ("idle_after: 2h\n", "idle_after", 1),
        ("idle_after: 0\n", "idle_after", 1),
        ("health_path: healthz\n", "health_path", 1),
        ("build:\n  context: ../outside\n", "build.context", 2),
        ("build:\n  dockerfile: Dockerfile\nimage: nginx\n", "image", 3),
        ("database:\n  engine: oracle\n", "database.engine", 2),
        ("database:\n  migrate: make migrate\n", "database.engine", 2),
        ("resources:\n  limits:\n    memory: 64Gi\n", "resources.limits.memory", 3),
        ("resources:\n  requests:\n    cpu: lots\n", "resources.requests.cpu", 3),
        ("resources:\n  requests: {cpu: 400m}\n  limits: {cpu: 200m}\n", "resources.requests.cpu", 2),
        ("services:\n  - name: redis\n    image: redis:7\n", "services[0].port", 2),
        ("services:\n  - {name: Redis, image: redis, port: 6379}\n", "services[0].name", 2),
        ("previews:\n  pull_requests: sometimes\n", "previews.pull_requests", 2),
        ("version: 2\n", "version", 1),
        ("screenshots: /\n", "screenshots", 1),
        ("screenshots: [/, login]\n", "screenshots[1]", 1),
        ("screenshots: ['/a b']\n", "screenshots[0]", 1),
        ("screenshots: ['//evil.test/']\n", "screenshots[0]", 1),
        ("screenshots: [/, /]\n", "screenshots[1]", 1),
        ("screenshots: [/1, /2, /3, /4, /5, /6]\n", "screenshots", 1),
        ("- just\n- a list\n", "", 1),
    ],
)
def test_an_invalid_file_names_the_field_and_the_line(text, where, line):
    with pytest.raises(PreviewFileError) as raised:
        parse(text, LIMITS)
    assert (raised.value.where, raised.value.line) == (where, line), str(raised.value)
    assert str(raised.value).startswith(f".gitea/preview.yml line {line}: ")


def test_broken_yaml_names_the_line():
    with pytest.raises(PreviewFileError) as raised:
        parse("port: 3000\nenv:\n  A: [unclosed\n", LIMITS)
    assert raised.value.line == 4
    assert "not valid YAML" in str(raised.value)


def test_a_file_too_large_is_refused():
    with pytest.raises(PreviewFileError, match="larger than 64 KiB"):
        parse("# " + "x" * 70_000, LIMITS)


def test_quantities_compare_across_units():
    assert quantity("500m") < quantity("1")
    assert quantity("512Mi") < quantity("1Gi") < quantity("2G")


def test_operator_defaults_then_file_then_operator_overrides():
    defaults = {
        "image": "registry.example/app:stable",
        "port": 8000,
        "env": {"A": "operator", "B": "operator"},
        "pod_labels": {"team": "x"},
        "override": {"health_path": "/ready", "env": {"B": "forced"}},
    }
    file = parse("port: 3000\nhealth_path: /healthz\nenv: {A: file}\n", LIMITS)
    config = resolve(defaults, file)
    assert config.port == 3000  # the file changes a default
    assert config.health_path == "/ready"  # an override wins over the file
    assert config.env == {"A": "file", "B": "forced"}
    assert config.image == "registry.example/app:stable"
    assert config.pod_labels == {"team": "x"}
    # A file that asks for a build wins over the operator's default image.
    assert resolve(defaults, parse("build: {dockerfile: Dockerfile.dev}\n", LIMITS)).image is None
    no_file = resolve(defaults, None)
    assert (no_file.port, no_file.health_path, no_file.from_file) == (8000, "/ready", False)


def test_the_file_can_turn_previews_off():
    config = resolve(None, parse("previews:\n  pull_requests: false\n  branches: [demo/*]\n", LIMITS))
    assert config.wanted_for(3, "feature") is not None
    assert config.wanted_for(None, "task/1") is not None
    assert config.wanted_for(None, "demo/x") is None
    assert resolve(None, None).wanted_for(3, "x") is None


def test_a_file_may_ask_to_sleep_sooner_than_the_service_never_later():
    assert parse("idle_after: 10m\n", LIMITS).idle_after == timedelta(minutes=10)
    assert parse("port: 80\n", LIMITS).idle_after is None
    never = Limits(LIMITS.max_replicas, LIMITS.max_ttl, LIMITS.quota, max_idle_after=None)
    assert parse("idle_after: 2h\n", never).idle_after == timedelta(hours=2)


def test_screenshots_default_to_the_home_page_and_a_file_may_name_others_or_none():
    assert resolve(None, None).screenshots == ("/",)
    assert resolve(None, parse("port: 80\n", LIMITS)).screenshots == ("/",)
    named = parse("screenshots: [/, /login, '/search?q=shoes&page=2']\n", LIMITS)
    assert resolve(None, named).screenshots == ("/", "/login", "/search?q=shoes&page=2")
    assert resolve(None, parse("screenshots: []\n", LIMITS)).screenshots == ()
