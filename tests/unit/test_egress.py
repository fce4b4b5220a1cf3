"""What previews and builds may reach (pure): the denied ranges, and each exception only on
the ports of what it is for."""

from __future__ import annotations

from app.domain.k8s.isolation import Opening, egress_rules
from app.settings import Settings
from app.usecases.deploy import policies


def test_the_cloud_metadata_and_wireserver_addresses_are_denied_by_default():
    anywhere = egress_rules(Settings().egress_denied_cidrs)[2]["to"]
    denied = next(block["ipBlock"]["except"] for block in anywhere if block["ipBlock"]["cidr"] == "0.0.0.0/0")
    assert "169.254.0.0/16" in denied
    assert "168.63.129.16/32" in denied


def test_builds_reach_gitea_and_the_registry_on_their_ports_only():
    settings = Settings(
        gitea_url="http://gitea.internal:3000",
        preview_registry="registry.internal:5000/previews",
        build_egress_allowed_cidrs=("10.1.2.0/24",),
    )
    opening = policies.build(settings).opening
    assert opening == Opening(("10.1.2.0/24",), (3000, 5000))
    rule = egress_rules(settings.egress_denied_cidrs, opening)[-1]
    assert rule == {
        "to": [{"ipBlock": {"cidr": "10.1.2.0/24"}}],
        "ports": [{"protocol": "TCP", "port": 3000}, {"protocol": "TCP", "port": 5000}],
    }


def test_default_ports_follow_the_scheme():
    settings = Settings(gitea_url="https://git.example.com", preview_registry="registry.example.com/p")
    assert policies.build(settings).opening.ports == (443,)
    insecure = settings.replace(registry_insecure=True)
    assert policies.build(insecure).opening.ports == (80, 443)


def test_no_exception_without_addresses():
    settings = Settings(gitea_url="http://gitea.internal:3000")
    assert len(egress_rules(settings.egress_denied_cidrs, policies.build(settings).opening)) == 3


def test_a_preview_reaches_its_shared_database_server_on_that_servers_port_only():
    from app.adapters.sql_admin import admins
    from app.domain.preview_file import Database, PreviewFile
    from app.usecases.deploy import pipeline, preview_config

    settings = Settings(
        postgres_admin_url="postgresql://admin@db.internal:6543/postgres", database_egress_cidrs=("10.9.0.0/16",)
    )
    wants_postgres = preview_config.resolve({}, PreviewFile(database=Database(engine="postgres")))
    servers = admins(settings)
    assert pipeline._database_egress(settings, servers, wants_postgres) == Opening(("10.9.0.0/16",), (6543,))
    wants_mysql = preview_config.resolve({}, PreviewFile(database=Database(engine="mysql")))
    assert pipeline._database_egress(settings, servers, wants_mysql) is None  # no shared MySQL server: nothing opened
    assert pipeline._database_egress(settings, servers, preview_config.resolve({}, None)) is None
