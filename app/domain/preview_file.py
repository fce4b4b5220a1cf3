"""`.gitea/preview.yml`: how a repository asks for its preview, parsed and validated.

The file is read at the preview's head commit, so a pull request can change its
own preview. Parsing is strict: an unknown key, a wrong type or a value out of
bounds is a `PreviewFileError` naming the field and its line, and the preview
fails with that message before anything is applied. See the README for the schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import yaml

from app.settings import parse_duration

PATH = ".gitea/preview.yml"
MAX_BYTES = 64 * 1024
ENGINES = ("postgres", "mysql")
MAX_SCREENSHOTS = 5
DEFAULT_SCREENSHOTS = ("/",)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A page of the app to screenshot: an absolute path with the characters a URL path and query
# may hold as they are (RFC 3986), so that it reaches the browser as written.
_PAGE = re.compile(r"/[A-Za-z0-9._~!$&()*+,;=:@%/?-]{0,255}")
_SERVICE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,30}[a-z0-9])?")
_QUANTITY = re.compile(r"(\d+(?:\.\d+)?)(m|k|Ki|Mi|Gi|Ti|M|G|T)?")
_QUANTITY_FACTORS = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(1000),
    "M": Decimal(1000**2),
    "G": Decimal(1000**3),
    "T": Decimal(1000**4),
    "Ki": Decimal(1024),
    "Mi": Decimal(1024**2),
    "Gi": Decimal(1024**3),
    "Ti": Decimal(1024**4),
}
# Variables the service sets itself: a file may not replace them.
RESERVED_ENV = frozenset({"PREVIEW_MODE", "PREVIEW_URL", "DATABASE_URL"})


class PreviewFileError(ValueError):
    """The file is not a valid preview file; the message names the field and its line."""

    def __init__(self, where: str, line: int | None, problem: str) -> None:
        at = f" line {line}" if line else ""
        super().__init__(f"{PATH}{at}: {where}: {problem}" if where else f"{PATH}{at}: {problem}")
        self.where, self.line, self.problem = where, line, problem


def quantity(text: str) -> Decimal:
    """A Kubernetes quantity (500m, 2, 512Mi, 1Gi) as a number; ValueError when it is not one."""
    match = _QUANTITY.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity such as 500m, 1, 512Mi or 2Gi")
    return Decimal(match.group(1)) * _QUANTITY_FACTORS[match.group(2)]


@dataclass(frozen=True)
class Limits:
    """What the operator allows a file to ask for."""

    max_replicas: int
    max_ttl: timedelta
    quota: dict[str, str]  # the namespace ResourceQuota's hard limits (requests.cpu, limits.memory, ...)
    max_idle_after: timedelta | None = None  # PREVIEW_IDLE_AFTER; None: never sleeps unless asked


@dataclass(frozen=True)
class Build:
    context: str = "."
    dockerfile: str = "Dockerfile"
    target: str | None = None
    args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Database:
    engine: str
    # A command is an argv list; a string in the file runs with /bin/sh -c.
    migrate: tuple[str, ...] | None = None
    seed: tuple[str, ...] | None = None
    version: str | None = None  # image tag of the in-namespace server


@dataclass(frozen=True)
class ExtraService:
    name: str
    image: str
    port: int
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PreviewFile:
    build: Build | None = None
    image: str | None = None
    port: int | None = None
    health_path: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)
    replicas: int | None = None
    ttl: timedelta | None = None
    idle_after: timedelta | None = None  # sleep after this long unvisited: sooner than the service would
    database: Database | None = None
    services: tuple[ExtraService, ...] = ()
    pull_requests: bool = True
    branches: tuple[str, ...] | None = None  # branch previews only for these patterns (fnmatch)
    screenshots: tuple[str, ...] | None = None  # pages to screenshot when ready; () none


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _fail(node: yaml.Node, where: str, problem: str) -> PreviewFileError:
    return PreviewFileError(where, _line(node), problem)


def _mapping(node: yaml.Node, where: str, allowed: tuple[str, ...]) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise _fail(node, where, "must be a mapping")
    found: dict[str, yaml.Node] = {}
    for key, value in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        path = f"{where}.{name}" if where else str(name)
        if name not in allowed:
            raise _fail(key, path, f"unknown field (expected one of: {', '.join(allowed)})")
        if name in found:
            raise _fail(key, path, "appears twice")
        found[name] = value
    return found


def _scalar(node: yaml.Node, where: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        raise _fail(node, where, "must be a single value")
    return str(node.value)


def _text(node: yaml.Node, where: str, max_length: int = 1024) -> str:
    value = _scalar(node, where).strip()
    if not value:
        raise _fail(node, where, "must not be empty")
    if len(value) > max_length:
        raise _fail(node, where, f"must be at most {max_length} characters")
    return value


def _whole(node: yaml.Node, where: str, low: int, high: int) -> int:
    value = _scalar(node, where)
    if not re.fullmatch(r"\d+", value) or not low <= int(value) <= high:
        raise _fail(node, where, f"must be a whole number from {low} to {high}")
    return int(value)


def _flag(node: yaml.Node, where: str) -> bool:
    value = _scalar(node, where).lower()
    if value not in ("true", "false"):
        raise _fail(node, where, "must be true or false")
    return value == "true"


def _relative_path(node: yaml.Node, where: str) -> str:
    value = _text(node, where)
    parts = value.split("/")
    if value.startswith("/") or ".." in parts or "\\" in value:
        raise _fail(node, where, "must be a path inside the repository (relative, without '..')")
    return "/".join(p for p in parts if p not in ("", ".")) or "."


def _variables(node: yaml.Node, where: str) -> dict[str, str]:
    if not isinstance(node, yaml.MappingNode):
        raise _fail(node, where, "must be a mapping of NAME: value")
    result: dict[str, str] = {}
    for key, value in node.value:
        name = _scalar(key, where)
        path = f"{where}.{name}"
        if not _ENV_NAME.fullmatch(name):
            raise _fail(key, path, "a variable name has letters, digits and '_' and does not start with a digit")
        if name in RESERVED_ENV:
            raise _fail(key, path, "is set by the preview service and cannot be replaced")
        if name in result:
            raise _fail(key, path, "appears twice")
        result[name] = "" if value.tag == "tag:yaml.org,2002:null" else _scalar(value, path)
    return result


def _command(node: yaml.Node, where: str) -> tuple[str, ...]:
    if isinstance(node, yaml.SequenceNode):
        argv = tuple(_text(item, f"{where}[{i}]", 4096) for i, item in enumerate(node.value))
        if not argv:
            raise _fail(node, where, "must not be empty")
        return argv
    return ("/bin/sh", "-c", _text(node, where, 4096))


def _build(node: yaml.Node) -> Build:
    fields = _mapping(node, "build", ("context", "dockerfile", "target", "args"))
    return Build(
        context=_relative_path(fields["context"], "build.context") if "context" in fields else ".",
        dockerfile=_relative_path(fields["dockerfile"], "build.dockerfile") if "dockerfile" in fields else "Dockerfile",
        target=_text(fields["target"], "build.target", 128) if "target" in fields else None,
        args=_variables(fields["args"], "build.args") if "args" in fields else {},
    )


def _database(node: yaml.Node) -> Database:
    fields = _mapping(node, "database", ("engine", "version", "migrate", "seed"))
    if "engine" not in fields:
        raise _fail(node, "database.engine", f"is required ({' or '.join(ENGINES)})")
    engine = _scalar(fields["engine"], "database.engine")
    if engine not in ENGINES:
        raise _fail(fields["engine"], "database.engine", f"must be {' or '.join(ENGINES)}")
    version = None
    if "version" in fields:
        version = _text(fields["version"], "database.version", 64)
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", version):
            raise _fail(fields["version"], "database.version", "must be an image tag such as 16 or 11.4")
    return Database(
        engine=engine,
        version=version,
        migrate=_command(fields["migrate"], "database.migrate") if "migrate" in fields else None,
        seed=_command(fields["seed"], "database.seed") if "seed" in fields else None,
    )


def _services(node: yaml.Node) -> tuple[ExtraService, ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise _fail(node, "services", "must be a list")
    result: list[ExtraService] = []
    for index, item in enumerate(node.value):
        where = f"services[{index}]"
        fields = _mapping(item, where, ("name", "image", "port", "env"))
        for required in ("name", "image", "port"):
            if required not in fields:
                raise _fail(item, f"{where}.{required}", "is required")
        name = _scalar(fields["name"], f"{where}.name")
        if not _SERVICE_NAME.fullmatch(name) or name in ("app", "database"):
            raise _fail(fields["name"], f"{where}.name", "must be a DNS label (a-z, 0-9, '-') other than app, database")
        if any(s.name == name for s in result):
            raise _fail(fields["name"], f"{where}.name", "is used twice")
        result.append(
            ExtraService(
                name=name,
                image=_text(fields["image"], f"{where}.image"),
                port=_whole(fields["port"], f"{where}.port", 1, 65535),
                env=_variables(fields["env"], f"{where}.env") if "env" in fields else {},
            )
        )
    return tuple(result)


def _resources(node: yaml.Node, limits: Limits) -> tuple[dict[str, str], dict[str, str]]:
    fields = _mapping(node, "resources", ("requests", "limits"))
    found: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    for kind, kind_node in fields.items():
        for name, value_node in _mapping(kind_node, f"resources.{kind}", ("cpu", "memory")).items():
            where = f"resources.{kind}.{name}"
            value = _scalar(value_node, where)
            try:
                amount = quantity(value)
            except ValueError as error:
                raise _fail(value_node, where, str(error)) from None
            ceiling = limits.quota.get(f"{kind}.{name}")
            if ceiling is not None and amount > quantity(ceiling):
                raise _fail(value_node, where, f"exceeds the namespace quota of {ceiling}")
            found[kind][name] = value
    for name, request in found["requests"].items():
        limit = found["limits"].get(name)
        if limit is not None and quantity(request) > quantity(limit):
            raise _fail(fields["requests"], f"resources.requests.{name}", f"is above its limit {limit}")
    return found["requests"], found["limits"]


def _previews(node: yaml.Node) -> tuple[bool, tuple[str, ...] | None]:
    fields = _mapping(node, "previews", ("pull_requests", "branches"))
    pull_requests = _flag(fields["pull_requests"], "previews.pull_requests") if "pull_requests" in fields else True
    branches = None
    if "branches" in fields:
        patterns = fields["branches"]
        if not isinstance(patterns, yaml.SequenceNode):
            raise _fail(patterns, "previews.branches", "must be a list of branch patterns such as task/*")
        branches = tuple(_text(p, f"previews.branches[{i}]", 255) for i, p in enumerate(patterns.value))
    return pull_requests, branches


def _screenshots(node: yaml.Node) -> tuple[str, ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise _fail(node, "screenshots", "must be a list of paths such as [/, /login]")
    if len(node.value) > MAX_SCREENSHOTS:
        raise _fail(node, "screenshots", f"may name at most {MAX_SCREENSHOTS} pages")
    pages: list[str] = []
    for index, item in enumerate(node.value):
        where = f"screenshots[{index}]"
        page = _text(item, where, 256)
        if not _PAGE.fullmatch(page) or page.startswith("//"):
            raise _fail(item, where, "must be a path on the app starting with / (no spaces or quotes)")
        if page in pages:
            raise _fail(item, where, "appears twice")
        pages.append(page)
    return tuple(pages)


_TOP_LEVEL = (
    "version",
    "build",
    "image",
    "port",
    "health_path",
    "env",
    "resources",
    "replicas",
    "ttl",
    "idle_after",
    "database",
    "services",
    "previews",
    "screenshots",
)


def parse(text: str, limits: Limits) -> PreviewFile:
    """The preview file in `text`; PreviewFileError when it is not valid."""
    root = _load(text)
    if root is None:
        return PreviewFile()
    fields = _mapping(root, "", _TOP_LEVEL)
    if "version" in fields and _scalar(fields["version"], "version") != "1":
        raise _fail(fields["version"], "version", "must be 1")
    if "build" in fields and "image" in fields:
        raise _fail(fields["image"], "image", "give either build or image, not both")
    values: dict[str, Any] = {}
    for name, node in fields.items():
        if name in _FIELDS:
            values.update(_FIELDS[name](node, limits))
    _check_rollout_fits_quota(values, limits, fields, root)
    return PreviewFile(**values)


def _load(text: str) -> yaml.Node | None:
    if len(text.encode()) > MAX_BYTES:
        raise PreviewFileError("", None, f"is larger than {MAX_BYTES // 1024} KiB")
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else None
        raise PreviewFileError("", line, f"not valid YAML ({error.problem})") from None
    except yaml.YAMLError as error:
        raise PreviewFileError("", None, f"not valid YAML ({error})") from None


def _health_path(node: yaml.Node) -> str:
    path = _text(node, "health_path")
    if not path.startswith("/"):
        raise _fail(node, "health_path", "must start with /")
    return path


def _ttl(node: yaml.Node, limits: Limits) -> timedelta:
    try:
        ttl = parse_duration(_scalar(node, "ttl"))
    except ValueError as error:
        raise _fail(node, "ttl", str(error)) from None
    if ttl > limits.max_ttl:
        raise _fail(node, "ttl", f"is above this service's maximum of {_hours(limits.max_ttl)}")
    return ttl


def _idle_after(node: yaml.Node, limits: Limits) -> timedelta:
    try:
        idle_after = parse_duration(_scalar(node, "idle_after"))
    except ValueError as error:
        raise _fail(node, "idle_after", str(error)) from None
    if limits.max_idle_after is not None and idle_after > limits.max_idle_after:
        minutes = int(limits.max_idle_after.total_seconds() // 60)
        raise _fail(node, "idle_after", f"may only be shorter than this service's {minutes}m, not longer")
    return idle_after


def _resource_values(node: yaml.Node, limits: Limits) -> dict[str, Any]:
    requests, resource_limits = _resources(node, limits)
    return {"requests": requests, "limits": resource_limits}


def _previews_values(node: yaml.Node) -> dict[str, Any]:
    pull_requests, branches = _previews(node)
    return {"pull_requests": pull_requests, "branches": branches}


# Each top-level field: its node (and the service's limits) to the PreviewFile fields it sets.
_FIELDS: dict[str, Callable[[yaml.Node, Limits], dict[str, Any]]] = {
    "build": lambda node, _: {"build": _build(node)},
    "image": lambda node, _: {"image": _text(node, "image")},
    "port": lambda node, _: {"port": _whole(node, "port", 1, 65535)},
    "health_path": lambda node, _: {"health_path": _health_path(node)},
    "env": lambda node, _: {"env": _variables(node, "env")},
    "resources": _resource_values,
    "replicas": lambda node, limits: {"replicas": _whole(node, "replicas", 1, limits.max_replicas)},
    "ttl": lambda node, limits: {"ttl": _ttl(node, limits)},
    "idle_after": lambda node, limits: {"idle_after": _idle_after(node, limits)},
    "database": lambda node, _: {"database": _database(node)},
    "services": lambda node, _: {"services": _services(node)},
    "previews": lambda node, _: _previews_values(node),
    "screenshots": lambda node, _: {"screenshots": _screenshots(node)},
}


def _check_rollout_fits_quota(
    values: dict[str, Any], limits: Limits, fields: dict[str, yaml.Node], root: yaml.Node
) -> None:
    """A rolling update runs one pod more than the replicas: the namespace quota must hold it too."""
    pods = values.get("replicas", 1) + 1
    for kind in ("requests", "limits"):
        for name, amount in values.get(kind, {}).items():
            ceiling = limits.quota.get(f"{kind}.{name}")
            if ceiling is not None and quantity(amount) * pods > quantity(ceiling):
                node = fields.get("replicas", fields.get("resources", root))
                where = "replicas" if "replicas" in fields else f"resources.{kind}.{name}"
                problem = f"{pods} pods while rolling out times {kind} {name} {amount}"
                problem += f" exceed the namespace quota of {ceiling}"
                raise _fail(node, where, problem)


def _hours(duration: timedelta) -> str:
    return f"{int(duration.total_seconds() // 3600)}h"
