"""Use cases: what the service does, called by the HTTP handlers, the jobs and the CLI."""
