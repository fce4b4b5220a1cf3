"""Registered repositories: each its own webhook secret, and the id of the hook made for it in Gitea."""


def statements(t):
    return [
        "ALTER TABLE repository ADD COLUMN webhook_secret VARCHAR(128)",
        "ALTER TABLE repository ADD COLUMN hook_id INTEGER",
    ]
