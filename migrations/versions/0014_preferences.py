"""preference centre, interests and consent texts: the built-in layout's footer links to the centre;
categories of events, the events' categories and the subscribers' interests; the built-in
digest marks each event's block so a copy can leave out events outside one's interests; the
exact wording of every consent (consent_texts, named by consent_records.consent_text)

Built-in layouts still as shipped get the "Manage your subscription" link next to
"Unsubscribe" (a staff-edited layout is left alone: it can add ``{{ manage_url }}`` itself).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 02:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import mailer.models.types

revision = '0014'
down_revision = "0013"
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
_DIGEST_HTML = [('{% for event in events %}\n<div class="event">', '{% for event in events %}{{ event.begin }}\n<div class="event">'),
                ('</div>\n{% endfor %}', '</div>\n{{ event.end }}{% endfor %}')]
_DIGEST_TEXT = [('{% for event in events %}\n* {{ event.title }}', '{% for event in events %}{{ event.begin }}\n* {{ event.title }}'),
                ('{{ event.ics_url }}\n{% endfor %}', '{{ event.ics_url }}\n{{ event.end }}{% endfor %}')]
templates = sa.table("templates", sa.column("id", sa.Integer), sa.column("html", sa.Text),
                     sa.column("text", sa.Text), sa.column("builtin", sa.Boolean), sa.column("kind", sa.String),
                     sa.column("name", sa.String))


def _swap(forward: bool, where, mark: str, html_pairs, text_pairs) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(templates.c.id, templates.c.html, templates.c.text).where(
        templates.c.builtin.is_(True), where)).all()
    for id_, html, text in rows:
        if forward and mark in html + text:
            continue  # made from today's files already (revision 0003 reads them)
        for old, new in html_pairs:
            html = html.replace(old, new) if forward else html.replace(new, old)
        for old, new in text_pairs:
            text = text.replace(old, new) if forward else text.replace(new, old)
        conn.execute(templates.update().where(templates.c.id == id_).values(html=html, text=text))


def _builtins(forward: bool) -> None:
    _swap(forward, templates.c.kind == "layout", "manage_url", _HTML, _TEXT)
    _swap(forward, templates.c.name == "Przegląd wydarzeń", "event.begin", _DIGEST_HTML, _DIGEST_TEXT)


def upgrade():
    op.create_table('categories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=80), nullable=False),
    sa.Column('name_pl', sa.String(length=120), nullable=False),
    sa.Column('name_en', sa.String(length=120), nullable=False),
    sa.Column('created_at', mailer.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_categories')),
    sa.UniqueConstraint('slug', name=op.f('uq_categories_slug'))
    )
    op.create_table('event_categories',
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_event_categories_category_id_categories'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_categories_event_id_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', 'category_id', name=op.f('pk_event_categories'))
    )
    op.create_index(op.f('ix_event_categories_category_id'), 'event_categories', ['category_id'], unique=False)
    op.create_table('subscriber_interests',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('category_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['category_id'], ['categories.id'], name=op.f('fk_subscriber_interests_category_id_categories'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_subscriber_interests_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'category_id', name=op.f('pk_subscriber_interests'))
    )
    op.create_index(op.f('ix_subscriber_interests_category_id'), 'subscriber_interests', ['category_id'], unique=False)
    op.create_table('consent_texts',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('wording', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('created_at', mailer.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('hash', name=op.f('pk_consent_texts'))
    )
    with op.batch_alter_table('consent_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent_text', sa.String(length=64), server_default='', nullable=False))
    _builtins(True)


def downgrade():
    _builtins(False)
    with op.batch_alter_table('consent_records', schema=None) as batch_op:
        batch_op.drop_column('consent_text')
    op.drop_table('consent_texts')
    op.drop_index(op.f('ix_subscriber_interests_category_id'), table_name='subscriber_interests')
    op.drop_table('subscriber_interests')
    op.drop_index(op.f('ix_event_categories_category_id'), table_name='event_categories')
    op.drop_table('event_categories')
    op.drop_table('categories')
