"""Deliveries are stored as received (the signed body, its signature) and planned by a
worker: a delivery id is stored once, and the scheduler finds unfinished work by when it was
received, not by when it was queued (the web no longer writes a second time to say so). The
body is kept only until the delivery is planned."""


def statements(t):
    return [
        "ALTER TABLE webhook_delivery ADD COLUMN body TEXT",
        "ALTER TABLE webhook_delivery ADD COLUMN signature VARCHAR(128)",
        # Older rows may share an id (a sender that replayed a request): all but the first are
        # renamed so the id can be unique from now on.
        """UPDATE webhook_delivery
           SET delivery_uuid = SUBSTR(delivery_uuid, 1, 40) || '#' || CAST(id AS VARCHAR(20))
           WHERE id NOT IN (SELECT MIN(id) FROM webhook_delivery GROUP BY delivery_uuid)""",
        "DROP INDEX webhook_delivery_delivery_uuid",
        "CREATE UNIQUE INDEX webhook_delivery_delivery_uuid ON webhook_delivery (delivery_uuid)",
        "DROP INDEX webhook_delivery_unqueued",
        "ALTER TABLE webhook_delivery DROP COLUMN enqueued_at",
        "CREATE INDEX webhook_delivery_unfinished ON webhook_delivery (processed_at, outcome)",
    ]
