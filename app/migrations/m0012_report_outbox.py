"""The report outbox: what Gitea has been told of each preview, and when to try again."""


def statements(t):
    return [
        "ALTER TABLE preview ADD COLUMN report_version INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE preview ADD COLUMN reported_version INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE preview ADD COLUMN report_detail TEXT",
        "ALTER TABLE preview ADD COLUMN report_attempts INTEGER NOT NULL DEFAULT 0",
        f"ALTER TABLE preview ADD COLUMN report_next_at {t.datetime}",
        "CREATE INDEX preview_report_next_at ON preview (report_next_at)",
    ]
