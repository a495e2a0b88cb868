"""Add OAuth token metadata and usage links for connections.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _connection_fk() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "connection_id", sa.String(length=36), sa.ForeignKey("connections.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "connection_oauth",
        _connection_fk(),
        sa.Column("flow", sa.String(length=16), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=True),
        sa.Column("authorization_endpoint", sa.Text(), nullable=True),
        sa.Column("token_endpoint", sa.Text(), nullable=True),
        sa.Column("registration_endpoint", sa.Text(), nullable=True),
        sa.Column("introspection_endpoint", sa.Text(), nullable=True),
        sa.Column("client_id", sa.String(length=400), nullable=True),
        sa.Column("redirect_uri", sa.Text(), nullable=True),
        sa.Column("resource", sa.Text(), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("has_refresh_token", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("signed_in_at", sa.Float(), nullable=True),
        sa.Column("refreshed_at", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_connection_oauth")),
    )
    op.create_table(
        "connection_checks",
        _connection_fk(),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("checked_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_connection_checks")),
    )
    op.create_table(
        "connection_usage_links",
        _connection_fk(),
        sa.Column("owner_kind", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=200), nullable=False),
        sa.Column("owner_name", sa.String(length=400), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("linked_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "owner_kind", "owner_id", name=op.f("pk_connection_usage_links")),
    )
    op.create_index("ix_connection_usage_links_owner", "connection_usage_links", ["owner_kind", "owner_id"])


def downgrade() -> None:
    op.drop_index("ix_connection_usage_links_owner", table_name="connection_usage_links")
    op.drop_table("connection_usage_links")
    op.drop_table("connection_checks")
    op.drop_table("connection_oauth")
