"""One preview's spec and the routing policies the routing specs (unit and cluster) render it with."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.domain.k8s.labels import PreviewSpec
from app.domain.k8s.routing import RoutingPolicy
from app.domain.naming import preview_names
from app.settings import Settings
from app.usecases.deploy import policies

GATEWAY = "gateways/previews"
NOW = datetime(2026, 11, 27, 12, 0, 0)


def spec() -> PreviewSpec:
    names = preview_names("acme/shop", "acme/shop#12", 12, "feature", "preview.example.com")
    return PreviewSpec(
        7, names, "acme/shop", "feature", "a" * 40, NOW, NOW + timedelta(hours=1), timedelta(hours=1), 12
    )


def settings_for(name: str, access: str = "basic") -> Settings:
    return Settings(routing=name, gateway=GATEWAY, access=access)


def policy_for(name: str, access: str = "basic") -> RoutingPolicy:
    return policies.routing(settings_for(name, access))
