"""SQLAlchemy Core tables of the workflow library: the draft history and saved run-setup defaults."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from studio.store.tables import metadata

draft_revisions = Table(
    "draft_revisions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("workspace_id", String(36), ForeignKey("workspaces.id"), nullable=False),
    Column("project_id", String(36), ForeignKey("projects.id"), nullable=False),
    Column("workflow_id", String(36), ForeignKey("workflows.id"), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("content_hash", String(80), nullable=False),
    Column("document", JSON, nullable=False),
    # What made the revision: 'save', 'create', 'rename', 'import', 'restore' (a version),
    # 'restore-draft' (an earlier revision) or 'kept' (a draft that another writer saved without
    # history, recorded before the library replaced it).
    Column("reason", String(16), nullable=False),
    # The published version number a 'restore' copied, else None.
    Column("source_version", Integer, nullable=True),
    Column("saved_at", Float, nullable=False),
    UniqueConstraint("workflow_id", "revision", name="uq_draft_revisions_workflow_revision"),
    Index("ix_draft_revisions_workflow", "workflow_id", "saved_at"),
)
"""Every draft content the library saved, so no edit a user saved is lost by a later save or restore."""

run_setup_defaults = Table(
    "run_setup_defaults",
    metadata,
    Column("workflow_id", String(36), ForeignKey("workflows.id"), primary_key=True),
    Column("workspace_id", String(36), ForeignKey("workspaces.id"), nullable=False),
    Column("project_id", String(36), ForeignKey("projects.id"), nullable=False),
    Column("values", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)
"""The run inputs last entered in the run setup dialog of each workflow, offered as its defaults."""
