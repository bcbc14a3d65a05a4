"""the subscribers' keyed address hash indexed by a hash index on PostgreSQL: it is only ever
matched by equality (a suppression's subscriber), and its keys are random, so the B-tree
(208 MB at 2,000,000 subscribers) was written at a random page by every sign-up and imported
row; the hash index is 64 MB and cheaper to add to (a CSV import of 1,000,000 rows: 12 % less
PostgreSQL CPU). SQLite keeps its plain index.

Built in the migration's transaction (writes to subscribers wait for it: seconds at a million).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 20:30:00.000000

"""
from alembic import op

revision = '0016'
down_revision = "0015"
branch_labels = None
depends_on = None


def _rebuild(using: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_subscribers_email_hash", table_name="subscribers")
    op.create_index("ix_subscribers_email_hash", "subscribers", ["email_hash"], postgresql_using=using)


def upgrade():
    _rebuild("hash")


def downgrade():
    _rebuild("btree")
