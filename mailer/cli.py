"""Command-line entry points: ``flask --app mailer ...``."""

import os

import click
from flask import Flask
from flask.cli import AppGroup

from .extensions import db_session

users_cli = AppGroup("users", help="Staff accounts.")
tokens_cli = AppGroup("tokens", help="API tokens of staff accounts.")
bounces_cli = AppGroup("bounces", help="Returned mail and complaints.")


def init_app(app: Flask) -> None:
    app.cli.add_command(demo_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(bounces_cli)


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


@bounces_cli.command("serve")
@click.option("--host", default=None, help="Address to listen on (default BOUNCE_SMTP_HOST).")
@click.option("--port", type=int, default=None, help="Port (default BOUNCE_SMTP_PORT).")
@click.option("--lmtp/--smtp", default=None, help="Speak LMTP or SMTP (default BOUNCE_SMTP_LMTP).")
def bounces_serve_command(host: str | None, port: int | None, lmtp: bool | None) -> None:
    """Receive returned mail over SMTP or LMTP until stopped (SIGTERM)."""
    from flask import current_app

    from .bounces import receiver

    config = current_app.config
    protocol = "LMTP" if (config["BOUNCE_SMTP_LMTP"] if lmtp is None else lmtp) else "SMTP"
    click.echo(f"Bounce receiver ({protocol}) on {host or config['BOUNCE_SMTP_HOST']}:"
               f"{port or config['BOUNCE_SMTP_PORT']}")
    receiver.serve(current_app._get_current_object(), host, port, lmtp)  # type: ignore[attr-defined]


@bounces_cli.command("poll")
def bounces_poll_command() -> None:
    """Read the bounce mailbox (BOUNCE_MAILBOX_URL) once, now."""
    from flask import current_app

    from .bounces import mailbox

    if not current_app.config["BOUNCE_MAILBOX_URL"]:
        raise click.ClickException("Set BOUNCE_MAILBOX_URL first.")
    counts = mailbox.poll(db_session, current_app.config)
    click.echo(", ".join(f"{key}: {value}" for key, value in sorted(counts.items())) or "nothing new")


@bounces_cli.command("read")
@click.argument("source", type=click.File("rb"), default="-")
@click.option("--recipient", "recipients", multiple=True, help="The envelope recipient (repeatable).")
def bounces_read_command(source, recipients: tuple[str, ...]) -> None:
    """Process one returned mail from a file or standard input (an MTA's pipe transport).
    Exits 75 (EX_TEMPFAIL) when the database cannot take it, so the MTA retries."""
    from flask import current_app

    from .bounces import handling

    data = source.read(current_app.config["BOUNCE_MAX_MESSAGE_KB"] * 1024 + 1)
    if len(data) > current_app.config["BOUNCE_MAX_MESSAGE_KB"] * 1024:
        raise click.ClickException("The message is too large.")
    try:
        outcome = handling.receive_mail(db_session, data, source="pipe", envelope_to=list(recipients))
        db_session.commit()
    except Exception as exc:
        db_session.rollback()
        click.echo(f"temporary failure: {exc}", err=True)
        raise SystemExit(75) from exc
    click.echo(outcome.verdict)
