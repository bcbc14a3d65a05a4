"""Command-line entry points: ``flask --app mailer ...``."""

import click
from flask import Flask

from .extensions import db


def init_app(app: Flask) -> None:
    app.cli.add_command(demo_command)


@click.command("demo")
def demo_command() -> None:
    """Create the demo admin, a demo list and an upcoming event (idempotent); print the login."""
    from . import demo

    email, password = demo.seed(db.session)
    click.echo(f"Demo admin: {email} / {password}")
