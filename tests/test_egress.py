"""What previews and builds may reach (pure): the denied ranges, and each exception only on
the ports of what it is for."""

from __future__ import annotations

from app.domain import manifests
from app.settings import Settings


def test_the_cloud_metadata_and_wireserver_addresses_are_denied_by_default():
    anywhere = manifests.egress_rules(Settings())[2]["to"]
    denied = next(block["ipBlock"]["except"] for block in anywhere if block["ipBlock"]["cidr"] == "0.0.0.0/0")
    assert "169.254.0.0/16" in denied and "168.63.129.16/32" in denied


def test_builds_reach_gitea_and_the_registry_on_their_ports_only():
    settings = Settings(
        gitea_url="http://gitea.internal:3000",
        preview_registry="registry.internal:5000/previews",
        build_egress_allowed_cidrs=("10.1.2.0/24",),
    )
    opening = manifests.build_opening(settings)
    assert opening == manifests.Opening(("10.1.2.0/24",), (3000, 5000))
    rule = manifests.egress_rules(settings, opening)[-1]
    assert rule == {
        "to": [{"ipBlock": {"cidr": "10.1.2.0/24"}}],
        "ports": [{"protocol": "TCP", "port": 3000}, {"protocol": "TCP", "port": 5000}],
    }


def test_default_ports_follow_the_scheme():
    settings = Settings(gitea_url="https://git.example.com", preview_registry="registry.example.com/p")
    assert manifests.build_opening(settings).ports == (443,)
    insecure = settings.replace(registry_insecure=True)
    assert manifests.build_opening(insecure).ports == (80, 443)


def test_no_exception_without_addresses():
    settings = Settings(gitea_url="http://gitea.internal:3000")
    assert len(manifests.egress_rules(settings, manifests.build_opening(settings))) == 3


def test_a_preview_reaches_its_shared_database_server_on_that_servers_port_only():
    from app.domain.preview_file import Database, PreviewFile
    from app.usecases import pipeline, preview_config

    settings = Settings(
        postgres_admin_url="postgresql://admin@db.internal:6543/postgres", database_egress_cidrs=("10.9.0.0/16",)
    )
    wants_postgres = preview_config.resolve({}, PreviewFile(database=Database(engine="postgres")))
    assert pipeline._database_egress(settings, wants_postgres) == manifests.Opening(("10.9.0.0/16",), (6543,))
    wants_mysql = preview_config.resolve({}, PreviewFile(database=Database(engine="mysql")))
    assert pipeline._database_egress(settings, wants_mysql) is None  # no shared MySQL server: nothing opened
    assert pipeline._database_egress(settings, preview_config.resolve({}, None)) is None
