"""The database a preview file asked for: engine, mode, name, its template, whether it was seeded, and
its size when the deploy measured it."""


def statements(t):
    return [
        "ALTER TABLE preview ADD COLUMN database_engine VARCHAR(16)",
        "ALTER TABLE preview ADD COLUMN database_mode VARCHAR(16)",
        "ALTER TABLE preview ADD COLUMN database_name VARCHAR(63)",
        "ALTER TABLE preview ADD COLUMN database_template VARCHAR(63)",
        f"ALTER TABLE preview ADD COLUMN database_seeded_at {t.datetime}",
        "ALTER TABLE preview ADD COLUMN database_size_bytes BIGINT",
    ]
