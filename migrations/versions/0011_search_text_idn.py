"""search text of addresses with an IDN domain: also as shown (U-label)

Subscribers whose domain is stored as an A-label (``xn--``) are found by the domain in its
own letters too ("lodz" finds jan@łódź.pl): their ``search_text`` is made again by the
application's function (mailer.folding.subscriber_text). Data only; nothing to undo.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 02:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

from mailer.folding import subscriber_text

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade():
    conn = op.get_bind()
    subscribers = sa.table('subscribers', sa.column('id', sa.Integer), sa.column('email', sa.String),
                           sa.column('name', sa.String), sa.column('search_text', sa.String))
    last = 0
    while True:
        rows = conn.execute(sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name)
                            .where(subscribers.c.id > last, subscribers.c.email.like('%@%xn--%'))
                            .order_by(subscribers.c.id).limit(BATCH)).all()
        if not rows:
            break
        conn.execute(subscribers.update().where(subscribers.c.id == sa.bindparam('key'))
                     .values(search_text=sa.bindparam('text')),
                     [{"key": row.id, "text": subscriber_text(row.email, row.name)} for row in rows])
        last = rows[-1].id


def downgrade():
    pass
