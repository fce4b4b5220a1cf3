"""Untrusted pull requests wait for a maintainer's approval of their exact commit.

- `from_fork`: the PR's head repository is not the base repository (from the payload;
  confirmed with Gitea before a build when Gitea is configured);
- `approved_sha`, `approved_by`: the commit a maintainer approved, and who;
- `actor` on a delivery: who sent it (the approver, for label and comment events).
"""


def statements(t):
    false = "FALSE" if t.boolean == "BOOLEAN" else "0"
    return [
        f"ALTER TABLE preview ADD COLUMN from_fork {t.boolean} NOT NULL DEFAULT {false}",
        "ALTER TABLE preview ADD COLUMN approved_sha VARCHAR(64)",
        "ALTER TABLE preview ADD COLUMN approved_by VARCHAR(255)",
        "ALTER TABLE webhook_delivery ADD COLUMN actor VARCHAR(255)",
    ]
