"""Command-line entry points: ``flask --app mailer ...``."""

import os
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .extensions import db_session

users_cli = AppGroup("users", help="Staff accounts.")
tokens_cli = AppGroup("tokens", help="API tokens of staff accounts.")
bounces_cli = AppGroup("bounces", help="Returned mail and complaints.")


def init_app(app: Flask) -> None:
    app.cli.add_command(demo_command)
    app.cli.add_command(demo_banner_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    app.cli.add_command(bounces_cli)


@click.command("demo")
def demo_command() -> None:
    """Create the demo admin, a demo list and an upcoming event (idempotent); print the login."""
    from . import demo

    email, _password = demo.seed(db_session, Path(current_app.instance_path))
    click.echo(f"Demo data ready; {email}'s sign-in is shown once the site is up.")


@click.command("demo-banner")
@click.option("--timeout", default=120.0, help="Seconds to wait for the web app.")
@click.option("--settle", default=1.5, help="Seconds to wait after it answers.")
def demo_banner_command(timeout: float, settle: float) -> None:
    """`make run`'s last word: wait for the web app to answer, print where to sign in and the
    demo admin's password, then wait quietly until the processes are stopped."""
    import signal
    import sys
    import time

    from . import demo

    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))  # Ctrl-C / honcho: a quiet stop
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    base = current_app.config["BASE_URL"]
    if not demo.wait_for_web(base + "/admin/login", timeout):
        click.echo(f"The web app did not answer at {base} within {timeout:.0f} s.", err=True)
    time.sleep(settle)  # the other processes' start-up lines (and the access log of the probe) first
    click.echo(demo.banner(base, Path(current_app.instance_path)))
    while True:
        signal.pause()


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
    from . import audit

    audit.record(db_session, _cli_actor(), "user.create", str(user.id), email=user.email, role=str(user.role))
    db_session.commit()
    click.echo(f"Created {user.role} {user.email}")


def _cli_actor():
    from . import audit

    return audit.Actor(None, f"cli:{os.environ.get('USER') or os.environ.get('LOGNAME') or 'shell'}", "cli")


@users_cli.command("set-password")
@click.argument("email")
@click.option("--generate", is_flag=True, help="Make up a random password and print it once.")
def set_password_command(email: str, generate: bool) -> None:
    """Set a staff member's password (generated, from MAILER_PASSWORD, or asked for); their
    sessions end."""
    from . import audit, users
    from .errors import DomainError

    try:
        user = users.user_by_email(db_session, email)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    if generate:
        password = users.generate_password()
    else:
        password = os.environ.get("MAILER_PASSWORD") or click.prompt(
            "New password", hide_input=True, confirmation_prompt=True)
    try:
        users.reset_password(db_session, user.id, password)
    except DomainError as exc:
        db_session.rollback()
        raise click.ClickException(exc.message) from exc
    audit.record(db_session, _cli_actor(), "password.reset", str(user.id), generated=generate)
    db_session.commit()
    click.echo(f"Password changed for {user.email}; their sessions have ended.")
    if generate:
        click.echo(f"New password (shown once): {password}")


@users_cli.command("reset-2fa")
@click.argument("email")
def reset_2fa_command(email: str) -> None:
    """Turn two-factor sign-in off for a staff member who lost their phone and codes."""
    from . import audit, two_factor, users
    from .errors import DomainError

    try:
        user = users.user_by_email(db_session, email)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    two_factor.disable(db_session, user)
    audit.record(db_session, _cli_actor(), "2fa.disable", str(user.id), by="cli")
    db_session.commit()
    click.echo(f"Two-factor sign-in is off for {user.email}.")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", default="", help="What the token is for (e.g. the CMS).")
@click.option("--scope", type=click.Choice(["read", "write", "admin"]), default=None,
              help="read: GET only; write: what the role allows; admin: everything (admins only). "
                   "Default: the widest the role allows.")
@click.option("--days", type=int, default=90, show_default=True, help="Days until the token expires (1-366).")
def create_token_command(email: str, name: str, scope: str | None, days: int) -> None:
    """Print a new API token for the staff member EMAIL (shown only once)."""
    from . import audit, users
    from .errors import DomainError

    if len(name) > 120:
        raise click.ClickException("The name is too long (at most 120 characters).")
    try:
        user = users.user_by_email(db_session, email)
        if not user.active:
            raise click.ClickException(f"The account {user.email} is deactivated.")
        created, token = users.issue_token(db_session, user, name, scope, days)
    except DomainError as exc:
        db_session.rollback()
        raise click.ClickException(exc.message) from exc
    audit.record(db_session, _cli_actor(), "token.create", str(created.id), name=created.name,
                 scope=str(created.scope), owner=user.email)
    db_session.commit()
    click.echo(token)


@tokens_cli.command("list")
@click.argument("email", required=False)
def list_tokens_command(email: str | None) -> None:
    """List the tokens of EMAIL (or everyone's): id, owner, name, scope, expiry, last use, state."""
    from . import users
    from .errors import DomainError
    from .models import utcnow

    try:
        owner = users.user_by_email(db_session, email).id if email else None
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    now = utcnow()
    for item in users.list_tokens(db_session, owner):
        state = ("revoked" if item.revoked_at else
                 "expired" if item.expires_at and item.expires_at <= now else "active")
        used = item.last_used_at.isoformat(timespec="minutes") if item.last_used_at else "never"
        expires = item.expires_at.isoformat(timespec="minutes") if item.expires_at else "never"
        click.echo(f"{item.id}\t{item.user.email}\t{item.prefix}…\t{item.name or '-'}\t{item.scope}\t"
                   f"expires {expires}\tlast used {used}\t{state}")


@tokens_cli.command("revoke")
@click.argument("token_id", type=click.IntRange(1, 2**31 - 1))
def revoke_token_command(token_id: int) -> None:
    """Revoke the token with this id (see ``tokens list``)."""
    from . import audit, users
    from .errors import DomainError

    try:
        revoked = users.revoke_token(db_session, token_id)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    audit.record(db_session, _cli_actor(), "token.revoke", str(token_id), owner=revoked.user.email)
    db_session.commit()
    click.echo(f"Revoked token {token_id} of {revoked.user.email}.")


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
