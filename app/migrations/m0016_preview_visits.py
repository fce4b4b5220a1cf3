"""When a preview was last visited, as the data plane's request counters tell: the count
last read for its app's Service, and when that count last moved."""


def statements(t):
    return [
        "ALTER TABLE preview ADD COLUMN requests_seen DOUBLE PRECISION",
        f"ALTER TABLE preview ADD COLUMN last_visit_at {t.datetime}",
    ]
