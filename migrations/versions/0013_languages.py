"""every reader in their own language: English texts of events, English versions of
templates, English subject and preheader of campaigns; the built-in templates get their
English versions

The English texts are nullable columns beside the Polish ones (None: not translated, the
Polish is shown). The built-in templates (revision 0003) get the English sources of
templates/email/campaign/*.en.html|txt as they are when this revision runs; a built-in that
already has an English version keeps it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 02:00:00

"""
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = "0012"
branch_labels = None
depends_on = None

SOURCES = Path(__file__).resolve().parents[2] / "templates" / "email" / "campaign"
BUILTINS = {"Układ podstawowy": "layout", "Zapowiedź wydarzenia": "announcement",
            "Przegląd wydarzeń": "digest"}

templates = sa.table(
    "templates",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("builtin", sa.Boolean),
    sa.column("html_en", sa.Text),
    sa.column("text_en", sa.Text),
)


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('title_en', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('place_en', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('summary_en', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('body_md_en', sa.Text(), nullable=True))
    with op.batch_alter_table('templates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('html_en', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('text_en', sa.Text(), nullable=True))
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject_en', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('preheader_en', sa.String(length=200), nullable=True))
    connection = op.get_bind()
    for name, stem in BUILTINS.items():
        connection.execute(templates.update().where(
            templates.c.name == name, templates.c.builtin.is_(True), templates.c.html_en.is_(None)
        ).values(html_en=(SOURCES / f"{stem}.en.html").read_text(encoding="utf-8"),
                 text_en=(SOURCES / f"{stem}.en.txt").read_text(encoding="utf-8")))


def downgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('preheader_en')
        batch_op.drop_column('subject_en')
    with op.batch_alter_table('templates', schema=None) as batch_op:
        batch_op.drop_column('text_en')
        batch_op.drop_column('html_en')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('body_md_en')
        batch_op.drop_column('summary_en')
        batch_op.drop_column('place_en')
        batch_op.drop_column('title_en')
