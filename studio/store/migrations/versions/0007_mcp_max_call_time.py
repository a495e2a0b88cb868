"""Add the maximum call time of MCP instances (a cap on calls whose limit progress keeps restarting).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mcp_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_call_timeout_s", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mcp_instances", schema=None) as batch_op:
        batch_op.drop_column("max_call_timeout_s")
