"""lists can be archived: kept with their history, offered neither to visitors nor to new
campaigns; a campaign keeps the report of its last test send

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 02:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import mailer.models.types

revision = '0012'
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.add_column(sa.Column('archived_at', mailer.models.types.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('test_report', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('test_report')
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.drop_column('archived_at')
