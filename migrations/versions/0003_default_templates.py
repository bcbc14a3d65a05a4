"""default templates: the built-in email templates as data

The built-in layout, announcement and digest were created on first use by whatever request
read the templates (a GET that wrote). They are data of the schema's version instead, read
from templates/email/campaign/*.html|txt as they are when this revision runs. A database
that already has them (made on first use) keeps its own, edited or not.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 12:00:00

"""
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from alembic import op

import mailer.models.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

SOURCES = Path(__file__).resolve().parents[2] / "templates" / "email" / "campaign"
# name, kind, file stem, layout name
BUILTINS = [
    ("Układ podstawowy", "layout", "layout", None),
    ("Zapowiedź wydarzenia", "content", "announcement", "Układ podstawowy"),
    ("Przegląd wydarzeń", "content", "digest", "Układ podstawowy"),
]

templates = sa.table(
    "templates",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("kind", sa.String),
    sa.column("layout_id", sa.Integer),
    sa.column("subject", sa.String),
    sa.column("html", sa.Text),
    sa.column("text", sa.Text),
    sa.column("builtin", sa.Boolean),
    sa.column("created_at", mailer.models.types.UTCDateTime(timezone=True)),
    sa.column("updated_at", mailer.models.types.UTCDateTime(timezone=True)),
)


def upgrade():
    connection = op.get_bind()
    ids = dict(connection.execute(sa.select(templates.c.name, templates.c.id)).all())
    now = datetime.now(timezone.utc)
    for name, kind, stem, layout_name in BUILTINS:
        if name in ids:
            continue
        connection.execute(templates.insert().values(
            name=name, kind=kind, layout_id=ids.get(layout_name) if layout_name else None,
            subject="", html=(SOURCES / f"{stem}.html").read_text(encoding="utf-8"),
            text=(SOURCES / f"{stem}.txt").read_text(encoding="utf-8"), builtin=True,
            created_at=now, updated_at=now))
        ids[name] = connection.execute(
            sa.select(templates.c.id).where(templates.c.name == name)).scalar_one()


def downgrade():
    # The rows stay: the code of revision 0002 made the same ones on first use, and staff
    # may have edited them or built content on them since.
    pass
