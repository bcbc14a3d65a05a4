"""deliveries: the Message-ID is no longer stored (``deliveries.message_id`` makes it from the
ids and the campaign's launch second; ``parse_message_id`` reads a returned one back), and on
PostgreSQL pages are filled to 45 %, so that recording a batch's outcomes is a HOT update
(no index touched; ``models.Delivery`` has the measurements).

The fill factor applies to pages written from now on; a table already filled keeps its pages
until it is rewritten (``VACUUM FULL``), which is not needed: campaigns to come use new pages.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29 23:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('message_id')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE deliveries SET (fillfactor = 45)")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE deliveries SET (fillfactor = 85)")
    # The Message-IDs of rows sent meanwhile are not written back (the domain they carried is
    # not known here): the older code then matches those bounces by VERP or recipient only.
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_id', sa.String(length=200), nullable=False, server_default=''))
