"""bounces: what came back (bounce_events), webhook nonces, campaign bounce/complaint counters

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import mailer.models.types

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('bounce_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('hard', 'soft', 'block', 'complaint', name='bouncekind', native_enum=False, length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('matched_by', sa.String(length=16), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=True),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('diagnostic', sa.String(length=1000), nullable=False),
    sa.Column('feedback_type', sa.String(length=32), nullable=False),
    sa.Column('report_key', sa.String(length=64), nullable=False),
    sa.Column('count_key', sa.String(length=40), nullable=True),
    sa.Column('raw_size', sa.Integer(), nullable=False),
    sa.Column('raw_sha256', sa.String(length=64), nullable=False),
    sa.Column('raw_excerpt', sa.Text(), nullable=False),
    sa.Column('reported_at', mailer.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', mailer.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_bounce_events_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bounce_events')),
    sa.UniqueConstraint('count_key', name=op.f('uq_bounce_events_count_key')),
    sa.UniqueConstraint('report_key', name=op.f('uq_bounce_events_report_key')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.create_index('ix_bounce_events_campaign', ['campaign_id', 'id'], unique=False)
        batch_op.create_index('ix_bounce_events_subscriber_kind', ['subscriber_id', 'kind', 'created_at'], unique=False)

    op.create_table('webhook_nonces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('nonce', sa.String(length=128), nullable=False),
    sa.Column('created_at', mailer.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_nonces')),
    sa.UniqueConstraint('provider', 'nonce', name='uq_webhook_nonces_provider_nonce')
    )
    with op.batch_alter_table('webhook_nonces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_nonces_created_at'), ['created_at'], unique=False)

    # Existing campaigns start at zero; the model sets the value for new rows.
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bounce_count', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('complaint_count', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.alter_column('bounce_count', server_default=None)
        batch_op.alter_column('complaint_count', server_default=None)


def downgrade():
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('complaint_count')
        batch_op.drop_column('bounce_count')

    with op.batch_alter_table('webhook_nonces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_nonces_created_at'))
    op.drop_table('webhook_nonces')

    with op.batch_alter_table('bounce_events', schema=None) as batch_op:
        batch_op.drop_index('ix_bounce_events_subscriber_kind')
        batch_op.drop_index('ix_bounce_events_campaign')
    op.drop_table('bounce_events')
