"""Command-line entry points: ``flask --app mailer ...``."""

import os

import click
from flask import Flask
from flask.cli import AppGroup

from .extensions import db_session

users_cli = AppGroup("users", help="Staff accounts.")
tokens_cli = AppGroup("tokens", help="API tokens of staff accounts.")


def init_app(app: Flask) -> None:
    app.cli.add_command(demo_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)


@click.command("demo")
def demo_command() -> None:
    """Create the demo admin, a demo list and an upcoming event (idempotent); print the login."""
    from . import demo

    email, password = demo.seed(db_session)
    click.echo(f"Demo admin: {email} / {password}")


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "editor"]), required=True,
              help="admin: everything; editor: events, templates, campaigns, subscribers read-only.")
def create_user_command(email: str, role: str) -> None:
    """Add a staff member. The password comes from MAILER_PASSWORD, or is asked for."""
    from . import users
    from .errors import DomainError
    from .subscribers import normalize_email

    try:
        email = normalize_email(email)  # before asking for a password
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    password = os.environ.get("MAILER_PASSWORD") or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True)
    try:
        user = users.create_user(db_session, email, password, role)
    except DomainError as exc:
        db_session.rollback()
        raise click.ClickException(exc.message) from exc
    db_session.commit()
    click.echo(f"Created {user.role} {user.email}")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="What the token is for (e.g. the CMS).")
def create_token_command(email: str, name: str) -> None:
    """Print a new API token for the staff member EMAIL (shown only once)."""
    from . import users
    from .errors import DomainError

    if len(name) > 120:
        raise click.ClickException("The name is too long (at most 120 characters).")
    try:
        user = users.user_by_email(db_session, email)
        if not user.active:
            raise click.ClickException(f"The account {user.email} is deactivated.")
        token = users.create_token(db_session, user, name)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    db_session.commit()
    click.echo(token)
