"""Tables for connection OAuth metadata, connection check results and usage links; no secrets in any column."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, ForeignKey, Index, Integer, String, Table, Text

from studio.store.tables import metadata

connection_oauth = Table(
    "connection_oauth",
    metadata,
    Column("connection_id", String(36), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("flow", String(16), nullable=False),
    Column("issuer", Text, nullable=True),
    Column("authorization_endpoint", Text, nullable=True),
    Column("token_endpoint", Text, nullable=True),
    Column("registration_endpoint", Text, nullable=True),
    Column("introspection_endpoint", Text, nullable=True),
    Column("client_id", String(400), nullable=True),
    Column("redirect_uri", Text, nullable=True),
    Column("resource", Text, nullable=True),
    Column("scopes", JSON, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("has_refresh_token", Boolean, nullable=False, server_default="0"),
    Column("signed_in_at", Float, nullable=True),
    Column("refreshed_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
)
"""Non-secret OAuth 2 state of an ``oauth2`` connection: endpoints, client id, scopes and token expiry.

``flow`` is ``static`` (endpoints and client id entered by the user) or ``mcp`` (discovered from an MCP
server's protected resource metadata, with the client registered dynamically). The tokens themselves and
any client secret are in the vault under the connection's ``secret_ref``.
"""

connection_checks = Table(
    "connection_checks",
    metadata,
    Column("connection_id", String(36), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("verdict", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("checked_at", Float, nullable=False),
)
"""The result of the last connection test: ``verdict`` is one of the ``CheckVerdict`` values."""

connection_usage_links = Table(
    "connection_usage_links",
    metadata,
    Column("connection_id", String(36), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("owner_kind", String(32), primary_key=True),
    Column("owner_id", String(200), primary_key=True),
    Column("owner_name", String(400), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("linked_at", Float, nullable=False),
    Index("ix_connection_usage_links_owner", "owner_kind", "owner_id"),
)
"""Uses of a connection that no workflow document shows, such as an MCP instance binding an
environment variable or header to the connection. Workflow steps are found by reading the documents."""
