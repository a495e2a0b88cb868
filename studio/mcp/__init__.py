"""MCP servers of a project without Qt: the catalog, instances with profiles and bindings, and mcpServers files."""

from studio.mcp.catalog import (
    BUILTIN_ENTRIES,
    CatalogEntry,
    add_entry,
    delete_entry,
    detect_remote_transport,
    get_entry,
    list_entries,
)
from studio.mcp.errors import McpConfigError, McpNotFoundError, McpProbeError
from studio.mcp.instances import (
    Binding,
    McpInstance,
    Profile,
    Timeouts,
    bind,
    create_instance,
    delete_instance,
    get_instance,
    list_instances,
    remove_binding,
    remove_profile,
    set_default_profile,
    set_options,
    set_profile,
)
from studio.mcp.mcp_servers_json import ExportResult, ImportReport, export_servers, import_servers, parse_servers
from studio.mcp.resolve import spec_for_instance
from studio.mcp.tool_cache import ToolEntry, cache_tools, cached_tools, tool_catalog, tool_entries

__all__ = [
    "BUILTIN_ENTRIES",
    "Binding",
    "CatalogEntry",
    "ExportResult",
    "ImportReport",
    "McpConfigError",
    "McpInstance",
    "McpNotFoundError",
    "McpProbeError",
    "Profile",
    "Timeouts",
    "ToolEntry",
    "add_entry",
    "bind",
    "cache_tools",
    "cached_tools",
    "create_instance",
    "delete_entry",
    "delete_instance",
    "detect_remote_transport",
    "export_servers",
    "get_entry",
    "get_instance",
    "import_servers",
    "list_entries",
    "list_instances",
    "parse_servers",
    "remove_binding",
    "remove_profile",
    "set_default_profile",
    "set_options",
    "set_profile",
    "spec_for_instance",
    "tool_catalog",
    "tool_entries",
]
