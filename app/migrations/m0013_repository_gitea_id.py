"""Repositories known by Gitea's id, which survives a rename (and when the scheduler last asked
Gitea about one); a preview keeps the names it was
given (namespace, host, app) under the key it was created with, whatever the repository is
called later."""


def statements(t):
    return [
        "ALTER TABLE repository ADD COLUMN gitea_id INTEGER",
        "CREATE UNIQUE INDEX repository_gitea_id ON repository (gitea_id)",
        f"ALTER TABLE repository ADD COLUMN checked_at {t.datetime}",
        "ALTER TABLE preview ADD COLUMN names_key VARCHAR(1024)",
        "UPDATE preview SET names_key = target_key",
    ]
