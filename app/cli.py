"""Operator commands on the Flask CLI (`flask --app app <command>`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from app.db import database
from app.domain.states import PreviewState
from app.migrations import apply_migrations, pending
from app.models import ApiToken
from app.usecases.access import tokens
from app.usecases.access.tokens import OPERATOR
from app.usecases.deploy import budgets
from app.usecases.errors import Invalid, NotFound
from app.usecases.intake import repositories
from app.usecases.operations import commands, lifecycle, views
from app.usecases.ports import GiteaError
from app.web import context

T = TypeVar("T")


@click.command("migrate")
@with_appcontext
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


@click.command("list")
@with_appcontext
@click.option("--state", type=click.Choice(PreviewState.ALL), help="Only previews in this state.")
@click.option("--repository", help="Only previews of owner/name.")
def list_command(state: str | None, repository: str | None) -> None:
    """List previews, newest first."""
    with database.connection_context():
        page = commands.listing(OPERATOR, state, repository, 1, 1000)
        for preview in page.items:
            target = f"#{preview.pr_number}" if preview.pr_number is not None else preview.branch
            click.echo(
                f"{preview.id}\t{preview.state}\t{preview.repository.full_name}\t{target}\t"
                f"{preview.head_sha[:12]}\t{preview.url or '-'}"
            )
        click.echo(f"{page.total} preview(s)")


@click.command("show")
@with_appcontext
@click.argument("preview_id", type=int)
def show(preview_id: int) -> None:
    """Show one preview with its deployments and events, as JSON."""
    with database.connection_context():
        try:
            preview = commands.find(OPERATOR, preview_id)
        except NotFound as error:
            raise click.ClickException(str(error)) from error
        data = views.view(preview).to_dict() | views.details(preview)
    click.echo(json.dumps(data, indent=2))


@click.command("delete")
@with_appcontext
@click.argument("preview_id", type=int)
def delete(preview_id: int) -> None:
    """Tear a preview down (queued for the worker)."""
    services = context.services()
    with database.connection_context():
        try:
            preview = commands.delete(services, OPERATOR, commands.find(OPERATOR, preview_id, "deploy"))
        except NotFound as error:
            raise click.ClickException(str(error)) from error
    click.echo(f"preview {preview.id} is {preview.state}")


@click.command("sweep")
@with_appcontext
@click.option("--dry-run", is_flag=True, help="Say what a pass would do; change nothing.")
def sweep(dry_run: bool) -> None:
    """Run one scheduler pass now: expiry, waiting previews, stuck work, orphans."""
    summary = lifecycle.run_pass(context.services(), dry_run=dry_run)
    for step, result in summary.items():
        if hasattr(result, "deleted"):
            result = f"namespaces {result.deleted or '-'}, vanished previews {result.vanished or '-'}"
        click.echo(f"{step}: {result}")
    if dry_run:
        click.echo("dry run: nothing was changed")


repos = AppGroup("repos", help="Repositories the service previews, each with its own webhook secret.")


def _registration(action: Callable[[], T]) -> T:
    with database.connection_context():
        try:
            return action()
        except (repositories.RegistrationError, GiteaError) as error:
            raise click.ClickException(str(error)) from error


@repos.command("add")
@click.argument("full_name")
def repos_add(full_name: str) -> None:
    """Register owner/name: a new secret, and its Gitea webhook pointed at PUBLIC_URL."""
    settings = context.settings()
    done = _registration(lambda: repositories.register(context.services().gitea, settings, full_name))
    click.echo(f"{done.full_name} registered; webhook {done.hook_id} calls {repositories.hook_url(settings)}")


@repos.command("rotate-secret")
@click.argument("full_name")
def repos_rotate(full_name: str) -> None:
    """A new webhook secret for owner/name, in the database and in Gitea."""
    settings = context.settings()
    done = _registration(lambda: repositories.rotate_secret(context.services().gitea, settings, full_name))
    click.echo(f"{done.full_name}: new secret set on webhook {done.hook_id}")


@repos.command("remove")
@click.argument("full_name")
def repos_remove(full_name: str) -> None:
    """Unregister owner/name and delete its webhook in Gitea."""
    _registration(lambda: repositories.remove(context.services().gitea, full_name))
    click.echo(f"{full_name} removed")


@repos.command("list")
def repos_list() -> None:
    """The registered repositories (never their secrets)."""
    with database.connection_context():
        for repository in repositories.registered():
            click.echo(f"{repository.full_name}\thook {repository.hook_id or '-'}")


@repos.command("budget")
@click.argument("full_name")
@click.argument("amount")
def repos_budget(full_name: str, amount: str) -> None:
    """Set owner/name's monthly budget in COST_CURRENCY (`default`: PREVIEW_BUDGET_PER_REPOSITORY)."""
    try:
        value = None if amount == "default" else float(amount)
    except ValueError:
        raise click.BadParameter(f"{amount!r} is not a number or 'default'", param_hint="AMOUNT") from None
    with database.connection_context():
        try:
            repository = budgets.set_budget(full_name, value)
        except (NotFound, Invalid) as error:
            raise click.ClickException(str(error)) from error
        budget = budgets.budget_of(context.settings(), repository)
        shown = "none" if budget is None else f"{budget:.2f} {context.settings().cost_currency} a month"
        click.echo(f"{repository.full_name}: budget {shown}")


tokens_group = AppGroup("tokens", help="API tokens: scoped, per repository or for all, stored hashed.")


@tokens_group.command("create")
@click.option("--name", required=True, help="Who or what uses it (an agent, a dashboard).")
@click.option("--scope", type=click.Choice(tokens.SCOPES), required=True)
@click.option("--repository", help="owner/name: only this repository's previews.")
@click.option("--all", "every", is_flag=True, help="Every repository.")
def tokens_create(name: str, scope: str, repository: str | None, every: bool) -> None:
    """Create a token and print it, once: only its hash is kept."""
    if every == (repository is not None):
        raise click.ClickException("give exactly one of --repository owner/name or --all")
    with database.connection_context():
        try:
            row, token = tokens.create(name, scope, repository)
        except ValueError as error:
            raise click.ClickException(str(error)) from error
    click.echo(f"token {row.id} ({scope}, {repository or 'every repository'}): {token}")
    click.echo("it is shown only now; store it where its user reads it from")


@tokens_group.command("list")
def tokens_list() -> None:
    """Tokens (never their values)."""
    with database.connection_context():
        for row in ApiToken.select().order_by(ApiToken.id):
            where = row.repository.full_name if row.repository_id else "every repository"
            used = row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else "never"
            state = "revoked" if row.revoked_at else "active"
            click.echo(f"{row.id}\t{row.name}\t{row.scope}\t{where}\t{state}\tlast used {used}")


@tokens_group.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke a token: it stops working at once."""
    with database.connection_context():
        if not tokens.revoke(token_id):
            raise click.ClickException(f"no active token {token_id}")
    click.echo(f"token {token_id} revoked")


def register(app: Flask) -> None:
    for command in (migrate, list_command, show, delete, sweep, repos, tokens_group):
        app.cli.add_command(command)
