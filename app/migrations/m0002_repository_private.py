"""Remember whether a repository is private: its PR comments may then show the preview password."""


def statements(t):
    default = "FALSE" if t.boolean == "BOOLEAN" else "0"
    return [f"ALTER TABLE repository ADD COLUMN private {t.boolean} NOT NULL DEFAULT {default}"]
