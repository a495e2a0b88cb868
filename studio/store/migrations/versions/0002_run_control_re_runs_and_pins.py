"""Add run control requests, test runs, reused and pinned step runs, and the step_pins table.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_pins",
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("workflow_id", sa.String(length=36), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_step_pins_project_id_projects")),
        sa.ForeignKeyConstraint(["workflow_id"], ["workflows.id"], name=op.f("fk_step_pins_workflow_id_workflows")),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], name=op.f("fk_step_pins_workspace_id_workspaces")),
        sa.PrimaryKeyConstraint("workflow_id", "step_id", name=op.f("pk_step_pins")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_test", sa.Boolean(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("requested_action", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("requested_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("requested_by", sa.String(length=200), nullable=True))

    with op.batch_alter_table("step_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reused_from", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("pinned", sa.Boolean(), server_default="0", nullable=False))

    with op.batch_alter_table("workflow_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="published", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("workflow_versions", schema=None) as batch_op:
        batch_op.drop_column("kind")

    with op.batch_alter_table("step_runs", schema=None) as batch_op:
        batch_op.drop_column("pinned")
        batch_op.drop_column("reused_from")

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("requested_by")
        batch_op.drop_column("requested_at")
        batch_op.drop_column("requested_action")
        batch_op.drop_column("is_test")

    op.drop_table("step_pins")
