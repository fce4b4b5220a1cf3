"""Preview pages are addressed by a random public id, not the row id (sequential ids list every preview)."""


def statements(t):
    random_hex = "md5(random()::text || id::text)" if t.boolean == "BOOLEAN" else "lower(hex(randomblob(16)))"
    return [
        "ALTER TABLE preview ADD COLUMN public_id VARCHAR(32)",
        f"UPDATE preview SET public_id = {random_hex}",
        "CREATE UNIQUE INDEX preview_public_id ON preview (public_id)",
    ]
