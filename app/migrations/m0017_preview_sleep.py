"""Previews that sleep when nobody visits them (app/usecases/deploy/sleeping.py):

- `ready_since`: when it last became ready (a deploy or a wake): idleness counts from the
  later of this and its last visit;
- `idle_after_seconds`: how long it may stay unvisited, as its last deploy resolved it from
  PREVIEW_IDLE_AFTER and its preview file; NULL: it never sleeps;
- `slept_at`: when it went to sleep; set until a wake or a deploy has taken its wake route
  away again;
- `wake_requested_at`: a visitor asked for it (the wake page) and it has not woken yet;
- `wake_endpoint`: where its wake route leads (WAKE_ENDPOINT when it went to sleep): a
  sleeping preview whose address is not today's gets the route again.
"""


def statements(t):
    return [
        f"ALTER TABLE preview ADD COLUMN ready_since {t.datetime}",
        "ALTER TABLE preview ADD COLUMN idle_after_seconds INTEGER",
        f"ALTER TABLE preview ADD COLUMN slept_at {t.datetime}",
        f"ALTER TABLE preview ADD COLUMN wake_requested_at {t.datetime}",
        "ALTER TABLE preview ADD COLUMN wake_endpoint VARCHAR(64)",
    ]
