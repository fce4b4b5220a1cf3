"""What previews spend, and the budgets that hold new ones back.

- `preview_usage`: one row per stretch of time a preview held cluster resources, with the
  CPU and memory its app container requested then; priced when read, at the prices of the
  day. Previews holding a slot now get an open row from their creation, with the app
  container's requests of this release (0.1 core, 128 MiB).
- `repository.monthly_budget`: the operator's budget for one repository, in place of
  PREVIEW_BUDGET_PER_REPOSITORY;
- `preview.budget_held_since`: a new preview held back because its repository spent its
  budget; out of the line for a slot until the budget allows it.
"""


def statements(t):
    true = "TRUE" if t.boolean == "BOOLEAN" else "1"
    return [
        f"""CREATE TABLE preview_usage (
            id {t.pk},
            preview_id INTEGER NOT NULL REFERENCES preview (id) ON DELETE CASCADE,
            repository_id INTEGER NOT NULL REFERENCES repository (id) ON DELETE CASCADE,
            cpu_cores DOUBLE PRECISION NOT NULL,
            memory_gib DOUBLE PRECISION NOT NULL,
            started_at {t.datetime} NOT NULL,
            ended_at {t.datetime}
        )""",
        "CREATE INDEX preview_usage_preview_id ON preview_usage (preview_id)",
        "CREATE INDEX preview_usage_repository_id_started_at ON preview_usage (repository_id, started_at)",
        "CREATE INDEX preview_usage_ended_at ON preview_usage (ended_at)",
        "INSERT INTO preview_usage (preview_id, repository_id, cpu_cores, memory_gib, started_at)"
        f" SELECT id, repository_id, 0.1, 0.125, created_at FROM preview WHERE holds_slot = {true}",
        "ALTER TABLE repository ADD COLUMN monthly_budget DOUBLE PRECISION",
        f"ALTER TABLE preview ADD COLUMN budget_held_since {t.datetime}",
    ]
