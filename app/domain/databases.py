"""A preview's database: its names and how the app connects (its objects in the namespace
are app/domain/k8s/database.py's). Pure functions.

Shared mode (the operator gave an admin URL): a database and a role named
`<prefix><preview id>` on the operator's server. In-namespace mode: a StatefulSet
of the official image, with its volume, a Service and the same Secret shape.
Either way the app reads DATABASE_URL and the engine's usual variables from the
Secret `preview-database`, never from plain env.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from app.domain.naming import SHORT_SHA, short_hash

SHARED, IN_NAMESPACE = "shared", "in-namespace"
PORTS = {"postgres": 5432, "mysql": 3306}
TEMPLATE_MARK = "tpl_"


def database_name(prefix: str, preview_id: int) -> str:
    """The database and its role: one name, <prefix><id>, short enough for MySQL's 32-character users."""
    return f"{prefix}{preview_id}"


def owner_id(prefix: str, name: str) -> int | None:
    """The preview a database name belongs to; None for names that are not a preview's."""
    match = re.fullmatch(re.escape(prefix) + r"(\d+)", name)
    return int(match.group(1)) if match else None


def template_name(prefix: str, repository: str, base_sha: str) -> str:
    """One template per repository and base commit: <prefix>tpl_<repository hash>_<sha12>."""
    return f"{prefix}{TEMPLATE_MARK}{short_hash(repository.lower(), 12)}_{base_sha[:SHORT_SHA].lower()}"


def is_template(prefix: str, name: str) -> bool:
    return re.fullmatch(re.escape(prefix + TEMPLATE_MARK) + r"[0-9a-f]{12}_[0-9a-f]{1,12}", name) is not None


@dataclass(frozen=True)
class Connection:
    engine: str
    host: str
    port: int
    name: str
    user: str
    password: str

    def url(self) -> str:
        scheme = "postgresql" if self.engine == "postgres" else "mysql"
        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"{scheme}://{credentials}@{self.host}:{self.port}/{quote(self.name, safe='')}"

    def env(self) -> dict[str, str]:
        """DATABASE_URL and the variables the engine's own clients read."""
        if self.engine == "postgres":
            own = {"PGHOST": self.host, "PGPORT": str(self.port), "PGDATABASE": self.name, "PGUSER": self.user}
            own["PGPASSWORD"] = self.password
        else:
            own = {"MYSQL_HOST": self.host, "MYSQL_TCP_PORT": str(self.port), "MYSQL_DATABASE": self.name}
            own |= {"MYSQL_USER": self.user, "MYSQL_PASSWORD": self.password, "MYSQL_PWD": self.password}
        return {"DATABASE_URL": self.url(), **own}
