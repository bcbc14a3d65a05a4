"""audience at a million: subscribers' folded search text (a trigram index on PostgreSQL),
tags, segments and the campaigns that target them, the record of bulk actions, and the
dashboard's background summary

``search_text`` is filled here for the subscribers already there, in batches, by the same
Python function the application uses (mailer.folding), so both agree on every letter.

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-29 00:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

import mailer.models.types
from mailer.folding import subscriber_text

revision = '0010'
down_revision = '0007'
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_text', sa.String(length=600), nullable=False, server_default=''))
    _fill_search_text()
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index('ix_subscribers_search_text_trgm', 'subscribers', ['search_text'], unique=False,
                    postgresql_using='gin', postgresql_ops={'search_text': 'gin_trgm_ops'})

    op.create_table('subscriber_tags',
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.Column('created_at', mailer.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_subscriber_tags_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'tag', name=op.f('pk_subscriber_tags'))
    )
    with op.batch_alter_table('subscriber_tags', schema=None) as batch_op:
        batch_op.create_index('ix_subscriber_tags_tag', ['tag', 'subscriber_id'], unique=False)

    op.create_table('segments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('match', sa.String(length=3), nullable=False),
    sa.Column('conditions', sa.JSON(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', mailer.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mailer.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_segments_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segments')),
    sa.UniqueConstraint('name', name=op.f('uq_segments_name'))
    )
    op.create_table('campaign_segments',
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('segment_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_segments_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_campaign_segments_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'segment_id', name=op.f('pk_campaign_segments'))
    )
    op.create_table('audience_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=320), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('selection', sa.JSON(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('affected', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('cursor', sa.Integer(), nullable=False),
    sa.Column('created_at', mailer.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', mailer.models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_audience_actions_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audience_actions')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('audience_actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audience_actions_created_at'), ['created_at'], unique=False)

    op.create_table('audience_summaries',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('computed_at', mailer.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_audience_summaries'))
    )


def _fill_search_text():
    """Every existing subscriber's search_text, BATCH rows at a time in id order."""
    conn = op.get_bind()
    subscribers = sa.table('subscribers', sa.column('id', sa.Integer), sa.column('email', sa.String),
                           sa.column('name', sa.String), sa.column('search_text', sa.String))
    last = 0
    while True:
        rows = conn.execute(sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.name)
                            .where(subscribers.c.id > last).order_by(subscribers.c.id).limit(BATCH)).all()
        if not rows:
            return
        conn.execute(subscribers.update().where(subscribers.c.id == sa.bindparam('key'))
                     .values(search_text=sa.bindparam('text')),
                     [{"key": row.id, "text": subscriber_text(row.email, row.name)} for row in rows])
        last = rows[-1].id


def downgrade():
    op.drop_table('audience_summaries')
    with op.batch_alter_table('audience_actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audience_actions_created_at'))
    op.drop_table('audience_actions')
    op.drop_table('campaign_segments')
    op.drop_table('segments')
    with op.batch_alter_table('subscriber_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriber_tags_tag')
    op.drop_table('subscriber_tags')
    op.drop_index('ix_subscribers_search_text_trgm', table_name='subscribers')
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('search_text')
