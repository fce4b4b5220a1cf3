"""Whether the `preview:approved` label is on the PR as far as the service last saw: a label
event approves only when it newly carries the label, not when any other label changes while
an old approval label is still there."""


def statements(t):
    false = "FALSE" if t.boolean == "BOOLEAN" else "0"
    return [f"ALTER TABLE preview ADD COLUMN approval_label_on {t.boolean} NOT NULL DEFAULT {false}"]
