"""Create the bills table.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bills",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("patient_id", sa.String(24), nullable=False),
        sa.Column("appointment_id", sa.String(24), nullable=True),
        sa.Column("disease", sa.String(200), nullable=False),
        sa.Column("total_cost_cents", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("total_cost_cents >= 0", name="bills_total_cost_not_negative"),
        sa.UniqueConstraint("appointment_id", name="bills_appointment_id_key"),
    )
    op.create_index("bills_patient_created", "bills", ["patient_id", "created_at", "id"])
    op.create_index("bills_created", "bills", ["created_at", "id"])


def downgrade() -> None:
    op.drop_table("bills")
