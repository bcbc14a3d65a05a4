"""keyset pages: an index on the audit log's actor address and id (the filter by staff
member reads that member's entries, newest first, rather than the whole log), and one on the
suppressions' reason and id (the filter by reason)

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
    op.create_index("ix_suppressions_reason_id", "suppressions", ["reason", "id"])


def downgrade():
    op.drop_index("ix_suppressions_reason_id", table_name="suppressions")
    op.drop_index("ix_audit_log_actor_id_entry", table_name="audit_log")
