"""import jobs: the parameters of the failure message

A failed import keeps its reason as a message id (translated when the page shows it) and
its parameters here (the line number of a broken row), instead of English text.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 12:10:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error_params', sa.JSON(), nullable=False, server_default='{}'))
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.alter_column('error_params', server_default=None)


def downgrade():
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_column('error_params')
