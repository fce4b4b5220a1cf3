"""One writer per preview and exact capacity.

- `holds_slot`: the preview counts against MAX_ACTIVE_PREVIEWS (it holds, or is about to
  hold, a namespace), claimed atomically and released when it is torn down;
- `lease_owner`, `lease_expires_at`: the one worker acting on the preview, until the lease
  expires unless renewed;
- previews that already hold resources get their slot; previews queued without one are
  in line since their last change.
"""


def statements(t):
    false, true = ("FALSE", "TRUE") if t.boolean == "BOOLEAN" else ("0", "1")
    return [
        f"ALTER TABLE preview ADD COLUMN holds_slot {t.boolean} NOT NULL DEFAULT {false}",
        "ALTER TABLE preview ADD COLUMN lease_owner VARCHAR(128)",
        f"ALTER TABLE preview ADD COLUMN lease_expires_at {t.datetime}",
        "CREATE INDEX preview_holds_slot ON preview (holds_slot)",
        f"UPDATE preview SET holds_slot = {true}"
        " WHERE state IN ('building', 'deploying', 'ready', 'failed', 'deleting')"
        " OR (state = 'queued' AND deployed_sha IS NOT NULL)",
        f"UPDATE preview SET waiting_since = updated_at"
        f" WHERE state = 'queued' AND holds_slot = {false} AND waiting_since IS NULL",
    ]
