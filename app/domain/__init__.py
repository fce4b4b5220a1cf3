"""The domain: pure functions and types, no I/O (events, plans, names, manifests, credentials)."""
