"""Errors of the MCP catalog and instances; each message names the value and the fix, never a secret."""

from __future__ import annotations


class McpConfigError(ValueError):
    """Invalid catalog entry, instance, profile, binding or mcpServers file content."""


class McpNotFoundError(LookupError):
    """No catalog entry or instance with the given id or name."""

    def __str__(self) -> str:
        # LookupError quotes a single argument like KeyError does not, but keep the text plain anyway.
        return str(self.args[0]) if self.args else ""


class McpProbeError(Exception):
    """A remote server URL did not answer as an MCP endpoint; the message says what came back and what to do."""
