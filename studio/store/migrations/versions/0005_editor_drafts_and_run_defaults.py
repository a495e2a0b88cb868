"""Add editor state: saved run-setup defaults and draft metadata.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "draft_revisions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("workflow_id", sa.String(length=36), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=80), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("source_version", sa.Integer(), nullable=True),
        sa.Column("saved_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_draft_revisions_project_id_projects")),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], name=op.f("fk_draft_revisions_workflow_id_workflows")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_draft_revisions_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft_revisions")),
        sa.UniqueConstraint("workflow_id", "revision", name="uq_draft_revisions_workflow_revision"),
    )
    with op.batch_alter_table("draft_revisions", schema=None) as batch_op:
        batch_op.create_index("ix_draft_revisions_workflow", ["workflow_id", "saved_at"], unique=False)

    op.create_table(
        "run_setup_defaults",
        sa.Column("workflow_id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_run_setup_defaults_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], name=op.f("fk_run_setup_defaults_workflow_id_workflows")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_run_setup_defaults_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_run_setup_defaults")),
    )


def downgrade() -> None:
    op.drop_table("run_setup_defaults")
    with op.batch_alter_table("draft_revisions", schema=None) as batch_op:
        batch_op.drop_index("ix_draft_revisions_workflow")

    op.drop_table("draft_revisions")
