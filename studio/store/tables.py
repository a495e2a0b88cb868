"""SQLAlchemy Core tables of the local store.

Every record has a UUID string id and stores its workspace and project ids, so records can later be
synchronised to a multi-tenant server without renumbering. JSON columns hold pydantic-dumped data.
Times are Unix seconds (float, UTC).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _id() -> Column[str]:
    return Column("id", String(36), primary_key=True)


def _scope() -> list[Column[str]]:
    return [
        Column("workspace_id", String(36), ForeignKey("workspaces.id"), nullable=False),
        Column("project_id", String(36), ForeignKey("projects.id"), nullable=False),
    ]


workspaces = Table(
    "workspaces",
    metadata,
    _id(),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    _id(),
    Column("workspace_id", String(36), ForeignKey("workspaces.id"), nullable=False),
    Column("slug", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("workspace_id", "slug", name="uq_projects_workspace_slug"),
)

workflows = Table(
    "workflows",
    metadata,
    _id(),
    *_scope(),
    Column("name", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("archived", Boolean, nullable=False, default=False),
)

drafts = Table(
    "drafts",
    metadata,
    _id(),
    *_scope(),
    Column("workflow_id", String(36), ForeignKey("workflows.id"), nullable=False, unique=True),
    Column("document", JSON, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

workflow_versions = Table(
    "workflow_versions",
    metadata,
    _id(),
    *_scope(),
    Column("workflow_id", String(36), ForeignKey("workflows.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("content_hash", String(80), nullable=False),
    Column("document", JSON, nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    # 'published', or 'test' for the hidden snapshot of a draft that a test run executes.
    Column("kind", String(16), nullable=False, server_default="published"),
    # The VALIDATION_REVISION (studio.model.validation) under which the document passed validation
    # without errors before it was stored, or NULL when it was stored unchecked.
    Column("validated_by", String(32), nullable=True),
    UniqueConstraint("workflow_id", "number", name="uq_workflow_versions_number"),
    UniqueConstraint("workflow_id", "content_hash", name="uq_workflow_versions_hash"),
)

runs = Table(
    "runs",
    metadata,
    _id(),
    *_scope(),
    Column("workflow_id", String(36), ForeignKey("workflows.id"), nullable=False),
    Column("version_id", String(36), ForeignKey("workflow_versions.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("result", JSON(none_as_null=True), nullable=True),
    Column("error", JSON(none_as_null=True), nullable=True),
    Column("parent_run_id", String(36), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("owner", String(200), nullable=True),
    Column("heartbeat_at", Float, nullable=True),
    Column("is_test", Boolean, nullable=False, server_default="0"),
    # A pause, resume or stop requested by another process; the owning engine applies and clears it.
    Column("requested_action", String(16), nullable=True),
    Column("requested_at", Float, nullable=True),
    Column("requested_by", String(200), nullable=True),
    Index("ix_runs_status", "status"),
    Index("ix_runs_workflow", "workflow_id", "created_at"),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("run_id", String(36), ForeignKey("runs.id"), primary_key=True),
    Column("step_key", String(400), primary_key=True),
    Column("step_id", String(64), nullable=False),
    Column("step_type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("inputs", JSON(none_as_null=True), nullable=True),
    Column("result", JSON(none_as_null=True), nullable=True),
    Column("error", JSON(none_as_null=True), nullable=True),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    # The run whose recorded result a re-run copied instead of executing the step again.
    Column("reused_from", String(36), nullable=True),
    Column("pinned", Boolean, nullable=False, server_default="0"),
    # Clustered on the primary key (SQLite WITHOUT ROWID): one B-tree write per journal upsert.
    sqlite_with_rowid=False,
)

events = Table(
    "events",
    metadata,
    Column("run_id", String(36), ForeignKey("runs.id"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("type", String(32), nullable=False),
    Column("step_key", String(400), nullable=True),
    Column("at", Float, nullable=False),
    Column("data", JSON, nullable=False),
    # Clustered on (run_id, seq) (SQLite WITHOUT ROWID): one B-tree write per journaled event.
    sqlite_with_rowid=False,
)

human_tasks = Table(
    "human_tasks",
    metadata,
    _id(),
    *_scope(),
    Column("run_id", String(36), ForeignKey("runs.id"), nullable=False),
    Column("workflow_id", String(36), nullable=False),
    Column("step_key", String(400), nullable=False),
    Column("step_id", String(64), nullable=False),
    Column("title", Text, nullable=False),
    Column("instructions", Text, nullable=False),
    Column("fields", JSON, nullable=False),
    Column("context", JSON(none_as_null=True), nullable=True),
    Column("assignee_role", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("decision", String(16), nullable=True),
    Column("values", JSON(none_as_null=True), nullable=True),
    Column("resolved_by", String(200), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("due_at", Float, nullable=True),
    Column("resolved_at", Float, nullable=True),
    Index("ix_human_tasks_status", "status"),
    UniqueConstraint("run_id", "step_key", name="uq_human_tasks_run_step"),
)

mcp_instances = Table(
    "mcp_instances",
    metadata,
    _id(),
    *_scope(),
    Column("name", String(200), nullable=False),
    Column("transport", String(16), nullable=False),
    Column("command", Text, nullable=True),
    Column("args", JSON, nullable=False),
    Column("env", JSON, nullable=False),
    Column("cwd", Text, nullable=True),
    Column("url", Text, nullable=True),
    Column("server_url", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    # The launch fields above copy the catalog entry the instance was made from (migration 0003).
    # Env values and args of the instance's profiles are in mcp_instance_profiles, secrets in bindings.
    Column("catalog_entry_id", String(64), nullable=True),
    Column("default_profile", String(100), nullable=True),
    Column("connect_timeout_s", Float, nullable=False, server_default="30"),
    Column("call_timeout_s", Float, nullable=True),
    Column("max_call_timeout_s", Float, nullable=True),
    Column("progress_extends_timeout", Boolean, nullable=False, server_default="1"),
    Column("allow_sampling", Boolean, nullable=False, server_default="0"),
    Column("updated_at", Float, nullable=True),
)

connections = Table(
    "connections",
    metadata,
    _id(),
    *_scope(),
    Column("name", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("provider", String(32), nullable=True),
    Column("base_url", Text, nullable=True),
    Column("secret_ref", String(200), nullable=True),
    Column("settings", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

step_pins = Table(
    "step_pins",
    metadata,
    *_scope(),
    Column("workflow_id", String(36), ForeignKey("workflows.id"), primary_key=True),
    Column("step_id", String(64), primary_key=True),
    Column("value", JSON(none_as_null=True), nullable=True),
    Column("source", String(16), nullable=False),
    Column("updated_at", Float, nullable=False),
)
"""Output values that test runs of a draft use instead of executing the step ('recorded' or 'edited')."""

usage_records = Table(
    "usage_records",
    metadata,
    _id(),
    *_scope(),
    Column("run_id", String(36), nullable=True),
    Column("workflow_id", String(36), nullable=True),
    Column("step_key", String(400), nullable=True),
    Column("step_id", String(64), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("quantity", Float, nullable=False),
    Column("unit", String(32), nullable=False),
    Column("credits", Float, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_usage_records_run", "run_id"),
)
