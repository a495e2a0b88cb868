"""SQLAlchemy Core tables of the MCP server catalog, instance profiles, connection bindings and tool lists."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, ForeignKey, String, Table, Text, UniqueConstraint

from studio.store.tables import metadata

mcp_catalog_entries = Table(
    "mcp_catalog_entries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("workspace_id", String(36), ForeignKey("workspaces.id"), nullable=False),
    Column("project_id", String(36), ForeignKey("projects.id"), nullable=False),
    Column("name", String(200), nullable=False),
    # 'stdio', 'http' (streamable HTTP) or 'sse' (the legacy HTTP+SSE transport).
    Column("transport", String(16), nullable=False),
    Column("command", Text, nullable=True),
    Column("args", JSON, nullable=False),
    Column("cwd", Text, nullable=True),
    Column("url", Text, nullable=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("project_id", "name", name="uq_mcp_catalog_entries_project_name"),
)
"""Custom catalog entries; the servers shipped with the studio are defined in code (studio.mcp.catalog)."""

mcp_instance_profiles = Table(
    "mcp_instance_profiles",
    metadata,
    Column("instance_id", String(36), ForeignKey("mcp_instances.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("env", JSON, nullable=False),
    Column("args", JSON, nullable=False),
    Column("headers", JSON, nullable=False),
)
"""Named sets of plain env variables, extra arguments and HTTP headers; never secrets (those are bindings)."""

mcp_instance_bindings = Table(
    "mcp_instance_bindings",
    metadata,
    Column("instance_id", String(36), ForeignKey("mcp_instances.id", ondelete="CASCADE"), primary_key=True),
    # 'env' for an environment variable of a stdio server, 'header' for an HTTP request header.
    Column("target", String(8), primary_key=True),
    Column("name", String(200), primary_key=True),
    # No foreign key: a deleted connection leaves the binding in place, and resolving it reports that.
    # None means the variable still needs a connection (as after importing a ${input:...} placeholder).
    Column("connection_id", String(36), nullable=True),
)
"""Which connection's secret supplies which environment variable or header of an instance."""

mcp_tool_cache = Table(
    "mcp_tool_cache",
    metadata,
    Column("instance_id", String(36), ForeignKey("mcp_instances.id", ondelete="CASCADE"), primary_key=True),
    Column("tools", JSON, nullable=False),
    Column("server_info", JSON, nullable=False),
    Column("cached_at", Float, nullable=False),
)
"""The tool list and handshake of an instance as seen the last time it was started."""
