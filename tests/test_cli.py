from app.db import database
from app.migrations import pending


def test_migrate_command_applies_and_checks(settings):
    from app import create_app

    app = create_app(settings)
    runner = app.test_cli_runner()
    check = runner.invoke(args=["migrate", "--check"])
    assert check.exit_code == 1 and "pending m0001_initial" in check.output
    result = runner.invoke(args=["migrate"])
    assert result.exit_code == 0, result.output
    assert (
        "applied 11 migration(s): m0001_initial, m0002_repository_private, m0003_preview_pin_and_wait,"
        " m0004_slots_and_leases, m0005_pr_trust, m0006_repository_secrets,"
        " m0007_preview_public_id, m0008_api_tokens, m0009_preview_database, m0010_no_payload_urls,"
        " m0011_approval_label_seen" in result.output
    )
    assert runner.invoke(args=["migrate", "--check"]).exit_code == 0
    assert "applied 0 migration(s)" in runner.invoke(args=["migrate"]).output
    with database.connection_context():
        assert pending(database.obj) == []
    database.obj.close()
