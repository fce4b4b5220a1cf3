from app.db import database
from app.migrations import pending


def test_migrate_command_applies_and_checks(settings):
    from app import create_app

    app = create_app(settings)
    runner = app.test_cli_runner()
    check = runner.invoke(args=["migrate", "--check"])
    assert check.exit_code == 1
    assert "pending m0001_initial" in check.output
    result = runner.invoke(args=["migrate"])
    assert result.exit_code == 0, result.output
    assert (
        "applied 19 migration(s): m0001_initial, m0002_repository_private, m0003_preview_pin_and_wait,"
        " m0004_slots_and_leases, m0005_pr_trust, m0006_repository_secrets,"
        " m0007_preview_public_id, m0008_api_tokens, m0009_preview_database, m0010_no_payload_urls,"
        " m0011_approval_label_seen" in result.output
    )
    assert runner.invoke(args=["migrate", "--check"]).exit_code == 0
    assert "applied 0 migration(s)" in runner.invoke(args=["migrate"]).output
    with database.connection_context():
        assert pending(database.obj) == []
    database.obj.close()


def test_migrations_run_at_once_by_several_processes_apply_each_once(settings):
    """Two pods of a rolling upgrade both run `migrate`: each migration is applied once, and
    none of them fails. (Four connections of their own, started together.)"""
    import threading

    from peewee import SqliteDatabase
    from playhouse.db_url import connect

    from app.migrations import apply_migrations, available

    barrier, results, errors = threading.Barrier(4), [], []

    def migrate() -> None:
        db = connect(settings.database_url.replace("postgres://", "postgresql://", 1))
        if isinstance(db, SqliteDatabase):
            db.pragma("busy_timeout", 10000)  # as app.db sets it
        try:
            barrier.wait()
            results.append(apply_migrations(db))
        except Exception as error:
            errors.append(repr(error))
        finally:
            db.close()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(name for names in results for name in names) == sorted(name for _, name in available())
