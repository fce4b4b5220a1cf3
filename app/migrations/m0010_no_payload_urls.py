"""Web links are derived from GITEA_URL, never stored from a payload (a signed delivery could
name `javascript:` there): the two columns that held them go."""


def statements(t):
    return [
        "ALTER TABLE preview DROP COLUMN pr_url",
        "ALTER TABLE repository DROP COLUMN html_url",
    ]
