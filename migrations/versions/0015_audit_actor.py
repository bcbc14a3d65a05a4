"""audit log: an index on the actor's address and id, so the staff page's filter by staff
member reads that member's entries, newest first, rather than the whole log

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 15:00:00.000000

"""
from alembic import op

revision = '0015'
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_audit_log_actor_id_entry", "audit_log", ["actor", "id"])


def downgrade():
    op.drop_index("ix_audit_log_actor_id_entry", table_name="audit_log")
