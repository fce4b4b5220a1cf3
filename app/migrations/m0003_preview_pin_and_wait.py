"""A preview can be pinned (PR label `preview:keep`) and can wait for a free slot (MAX_ACTIVE_PREVIEWS)."""


def statements(t):
    default = "FALSE" if t.boolean == "BOOLEAN" else "0"
    return [
        f"ALTER TABLE preview ADD COLUMN pinned {t.boolean} NOT NULL DEFAULT {default}",
        f"ALTER TABLE preview ADD COLUMN waiting_since {t.datetime}",
        "CREATE INDEX preview_waiting_since ON preview (waiting_since)",
    ]
