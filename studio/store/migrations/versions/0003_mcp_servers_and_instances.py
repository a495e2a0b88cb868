"""Add the MCP server catalog, instance profiles and connection bindings.

Existing instances keep working: each gets a custom catalog entry made from its launch fields
(or the built-in entry when its command is ``studio-tools``), and its env moves into a profile
named ``default``.

Revision ID: 0003
Revises: 0002
"""

import time
import uuid
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BUILTIN_TOOLS_ENTRY = "builtin:studio-tools"
DEFAULT_PROFILE = "default"


def upgrade() -> None:
    with op.batch_alter_table("mcp_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("catalog_entry_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("default_profile", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("connect_timeout_s", sa.Float(), server_default="30", nullable=False))
        batch_op.add_column(sa.Column("call_timeout_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("progress_extends_timeout", sa.Boolean(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("allow_sampling", sa.Boolean(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("updated_at", sa.Float(), nullable=True))

    op.create_table(
        "mcp_catalog_entries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workspace_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("command", sa.Text(), nullable=True),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("cwd", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_mcp_catalog_entries_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_mcp_catalog_entries_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mcp_catalog_entries")),
        sa.UniqueConstraint("project_id", "name", name="uq_mcp_catalog_entries_project_name"),
    )
    op.create_table(
        "mcp_instance_profiles",
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["mcp_instances.id"],
            name=op.f("fk_mcp_instance_profiles_instance_id_mcp_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", "name", name=op.f("pk_mcp_instance_profiles")),
    )
    op.create_table(
        "mcp_instance_bindings",
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("target", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("connection_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["mcp_instances.id"],
            name=op.f("fk_mcp_instance_bindings_instance_id_mcp_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", "target", "name", name=op.f("pk_mcp_instance_bindings")),
    )
    op.create_table(
        "mcp_tool_cache",
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("tools", sa.JSON(), nullable=False),
        sa.Column("server_info", sa.JSON(), nullable=False),
        sa.Column("cached_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["mcp_instances.id"],
            name=op.f("fk_mcp_tool_cache_instance_id_mcp_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_mcp_tool_cache")),
    )
    _move_instances()


def _move_instances() -> None:
    """Give every existing instance a catalog entry and move its env into the 'default' profile."""
    bind = op.get_bind()
    meta = sa.MetaData()
    instances = sa.Table("mcp_instances", meta, autoload_with=bind)
    entries = sa.Table("mcp_catalog_entries", meta, autoload_with=bind)
    profiles = sa.Table("mcp_instance_profiles", meta, autoload_with=bind)
    taken: set[tuple[str, str]] = set()
    for row in bind.execute(sa.select(instances)).mappings().all():
        entry_id = BUILTIN_TOOLS_ENTRY if row["command"] == "studio-tools" else _add_entry(bind, entries, row, taken)
        env: dict[str, Any] = dict(row["env"] or {})
        bind.execute(
            profiles.insert().values(instance_id=row["id"], name=DEFAULT_PROFILE, env=env, args=[], headers={})
        )
        # NOTE: env values move into the profile as they were, in plain text as before. A migration
        # cannot reach the secrets vault, so secret values stay there until the user binds a connection.
        bind.execute(
            instances.update()
            .where(instances.c.id == row["id"])
            .values(catalog_entry_id=entry_id, default_profile=DEFAULT_PROFILE, env={}, updated_at=time.time())
        )


def _add_entry(bind: Any, entries: sa.Table, row: Any, taken: set[tuple[str, str]]) -> str:
    name = str(row["name"])
    number = 2
    while (row["project_id"], name) in taken:
        name = f"{row['name']} ({number})"
        number += 1
    taken.add((row["project_id"], name))
    entry_id = str(uuid.uuid4())
    bind.execute(
        entries.insert().values(
            id=entry_id,
            workspace_id=row["workspace_id"],
            project_id=row["project_id"],
            name=name,
            transport=row["transport"],
            command=row["command"],
            args=list(row["args"] or []),
            cwd=row["cwd"],
            url=row["url"],
            description="Made from an instance that existed before the catalog",
            created_at=time.time(),
        )
    )
    return entry_id


def downgrade() -> None:
    bind = op.get_bind()
    meta = sa.MetaData()
    instances = sa.Table("mcp_instances", meta, autoload_with=bind)
    profiles = sa.Table("mcp_instance_profiles", meta, autoload_with=bind)
    for row in bind.execute(sa.select(instances)).mappings().all():
        profile = bind.execute(
            sa.select(profiles.c.env).where(
                profiles.c.instance_id == row["id"], profiles.c.name == (row["default_profile"] or DEFAULT_PROFILE)
            )
        ).first()
        if profile is not None:
            env = {**dict(profile[0] or {}), **dict(row["env"] or {})}
            bind.execute(instances.update().where(instances.c.id == row["id"]).values(env=env))

    op.drop_table("mcp_tool_cache")
    op.drop_table("mcp_instance_bindings")
    op.drop_table("mcp_instance_profiles")
    op.drop_table("mcp_catalog_entries")
    with op.batch_alter_table("mcp_instances", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("allow_sampling")
        batch_op.drop_column("progress_extends_timeout")
        batch_op.drop_column("call_timeout_s")
        batch_op.drop_column("connect_timeout_s")
        batch_op.drop_column("default_profile")
        batch_op.drop_column("catalog_entry_id")
