"""preference centre: the built-in layout's footer links to it

Built-in layouts still as shipped get the "Manage your subscription" link next to
"Unsubscribe" (a staff-edited layout is left alone: it can add ``{{ manage_url }}`` itself).

Revision ID: 0014
Revises: 0010
Create Date: 2026-11-29 02:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

revision = '0014'
down_revision = '0010'
branch_labels = None
depends_on = None

_HTML = [
    ('<a href="{{ view_url }}">View in your browser</a> · <a href="{{ unsubscribe_url }}">Unsubscribe</a>',
     '<a href="{{ view_url }}">View in your browser</a> · <a href="{{ manage_url }}">Manage your subscription</a>'
     ' · <a href="{{ unsubscribe_url }}">Unsubscribe</a>'),
    ('<a href="{{ view_url }}">Otwórz w przeglądarce</a> · <a href="{{ unsubscribe_url }}">Wypisz się</a>',
     '<a href="{{ view_url }}">Otwórz w przeglądarce</a> · <a href="{{ manage_url }}">Zarządzaj subskrypcją</a>'
     ' · <a href="{{ unsubscribe_url }}">Wypisz się</a>'),
]
_TEXT = [
    ('View in your browser: {{ view_url }}\nUnsubscribe',
     'View in your browser: {{ view_url }}\nManage your subscription: {{ manage_url }}\nUnsubscribe'),
    ('Otwórz w przeglądarce: {{ view_url }}\nWypisz się',
     'Otwórz w przeglądarce: {{ view_url }}\nZarządzaj subskrypcją: {{ manage_url }}\nWypisz się'),
]
templates = sa.table("templates", sa.column("id", sa.Integer), sa.column("html", sa.Text),
                     sa.column("text", sa.Text), sa.column("builtin", sa.Boolean), sa.column("kind", sa.String))


def _swap(forward: bool) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(templates.c.id, templates.c.html, templates.c.text).where(
        templates.c.builtin.is_(True), templates.c.kind == "layout")).all()
    for id_, html, text in rows:
        if forward and "manage_url" in html + text:
            continue  # the layout has the link already (made from today's files)
        for old, new in _HTML:
            html = html.replace(old, new) if forward else html.replace(new, old)
        for old, new in _TEXT:
            text = text.replace(old, new) if forward else text.replace(new, old)
        conn.execute(templates.update().where(templates.c.id == id_).values(html=html, text=text))


def upgrade():
    _swap(True)


def downgrade():
    _swap(False)
