"""API tokens in the database: hashed, scoped (read, deploy, admin), optionally to one repository."""


def statements(t):
    return [
        f"""CREATE TABLE api_token (
            id {t.pk},
            name VARCHAR(255) NOT NULL,
            token_hash VARCHAR(64) NOT NULL UNIQUE,
            scope VARCHAR(16) NOT NULL,
            repository_id INTEGER REFERENCES repository (id) ON DELETE CASCADE,
            created_at {t.datetime} NOT NULL,
            last_used_at {t.datetime},
            revoked_at {t.datetime}
        )""",
    ]
