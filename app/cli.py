"""Operator commands on the Flask CLI (`flask --app app <command>`)."""

from __future__ import annotations

import click
from flask import Flask

from app.db import database
from app.migrations import apply_migrations, pending


def register(app: Flask) -> None:
    @app.cli.command("migrate")
    @click.option("--check", is_flag=True, help="Only list pending migrations; exit 1 if any.")
    def migrate(check: bool) -> None:
        """Apply pending schema migrations."""
        with database.connection_context():
            if check:
                names = pending(database.obj)
                for name in names:
                    click.echo(f"pending {name}")
                raise SystemExit(1 if names else 0)
            names = apply_migrations(database.obj)
        click.echo(f"applied {len(names)} migration(s)" + (": " + ", ".join(names) if names else ""))
