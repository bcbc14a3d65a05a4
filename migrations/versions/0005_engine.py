"""the sending engine: batch leases, frozen content, jobs outbox, notices

Deliveries lose their per-row claim (``claimed_at``, the "sending" status): a batch is
leased as a whole (``send_batches``); their status leaves the index, so recording an outcome
is a heap-only update where the page has room (filled to 85 %). What a campaign sends is frozen at launch
(``campaign_contents``). Jobs are written with the data they act on (``jobs``) and
notices are rows (``notices``). Campaigns count messages that may have gone twice and
keep their back-off state.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 22:34:36.203958

"""
from alembic import op
import sqlalchemy as sa

import mailer.models.types


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task', sa.String(length=64), nullable=False),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('created_at', mailer.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('relayed_at', mailer.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_relayed_at'), ['relayed_at'], unique=False)

    op.create_table('send_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('batch', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=32), nullable=True),
    sa.Column('lease_expires_at', mailer.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('due_at', mailer.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_send_batches')),
    sa.UniqueConstraint('campaign_id', 'batch', name='uq_send_batches_campaign_batch'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('send_batches', schema=None) as batch_op:
        batch_op.create_index('ix_send_batches_campaign_done', ['campaign_id', 'done'], unique=False)

    op.create_table('notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('confirm', 'welcome', name='noticekind', native_enum=False, length=16), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('queued', 'sent', 'failed', 'dropped', name='noticestatus', native_enum=False, length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('available_at', mailer.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('holder', sa.String(length=32), nullable=True),
    sa.Column('lease_expires_at', mailer.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', mailer.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', mailer.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=False),
    sa.Column('message_id', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_notices_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notices')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.create_index('ix_notices_kind_sent_at', ['kind', 'sent_at'], unique=False)
        batch_op.create_index('ix_notices_status_available_at', ['status', 'available_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notices_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('campaign_contents',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('locale', sa.String(length=8), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('html', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', mailer.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_contents_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'locale', name=op.f('pk_campaign_contents'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('doubtful_count', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('failing_since', mailer.models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('retry_at', mailer.models.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('backoff_level', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('status_code', sa.String(length=16), nullable=False, server_default=''))

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        for column in ('doubtful_count', 'backoff_level', 'status_code'):
            batch_op.alter_column(column, server_default=None)

    # Rows a worker had claimed are queued again; batches of started campaigns with rows
    # left to send get their lease rows (the others are done).
    op.execute("UPDATE deliveries SET status = 'queued' WHERE status = 'sending'")
    op.execute("INSERT INTO send_batches (campaign_id, batch, done)"
               " SELECT campaign_id, batch, MIN(CASE WHEN status = 'queued' THEN 0 ELSE 1 END) = 1"
               " FROM deliveries GROUP BY campaign_id, batch")
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('claimed_at')
        batch_op.drop_index('ix_deliveries_campaign_status_batch')
        batch_op.create_index('ix_deliveries_campaign_batch', ['campaign_id', 'batch'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':  # room on each page for HOT updates
        op.execute("ALTER TABLE deliveries SET (fillfactor = 85)")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_campaign_batch')
        batch_op.create_index('ix_deliveries_campaign_status_batch', ['campaign_id', 'status', 'batch'],
                              unique=False)
        batch_op.add_column(sa.Column('claimed_at', mailer.models.types.UTCDateTime(timezone=True),
                                      nullable=True))

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('status_code')
        batch_op.drop_column('backoff_level')
        batch_op.drop_column('retry_at')
        batch_op.drop_column('failing_since')
        batch_op.drop_column('doubtful_count')

    op.drop_table('campaign_contents')
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notices_subscriber_id'))
        batch_op.drop_index('ix_notices_status_available_at')
        batch_op.drop_index('ix_notices_kind_sent_at')

    op.drop_table('notices')
    with op.batch_alter_table('send_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_send_batches_campaign_done')

    op.drop_table('send_batches')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_relayed_at'))

    op.drop_table('jobs')
