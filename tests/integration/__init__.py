"""Specs against real Redis, PostgreSQL, SQLite, MariaDB and Gitea, the service's own processes
and the Helm chart as it renders."""
