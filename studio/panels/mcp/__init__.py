"""MCP panels: the servers dock with the catalog and instances, and the page of one instance."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget

from studio.mcp.tool_cache import ToolEntry, tool_entries
from studio.panels.mcp.instance_page import InstancePage
from studio.panels.mcp.panel import McpPanel
from studio.panels.mcp.schema_form import FormError, SchemaForm

__all__ = [
    "FormError",
    "InstancePage",
    "McpPanel",
    "SchemaForm",
    "ToolEntry",
    "install_mcp_panels",
    "quick_add_tools",
    "tool_entries",
]

logger = logging.getLogger(__name__)


def install_mcp_panels(window: Any) -> McpPanel:
    """Add the "MCP servers" dock and an MCP menu to the main window; return the panel.

    Uses the window's public ``store``, ``menuBar()``, ``addDockWidget`` and ``sig_window_closed``.
    """
    panel = McpPanel(window.store, window)
    dock = QDockWidget("MCP servers", window)
    dock.setObjectName("mcp-servers-dock")
    dock.setWidget(panel)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    dock.hide()
    menu = window.menuBar().addMenu("&MCP")
    show = dock.toggleViewAction()
    show.setText("MCP &servers")
    menu.addAction(show)
    menu.addAction("&Import mcpServers file…", panel.request_import)
    menu.addAction("&Export mcpServers file…", panel.request_export)
    panel.dock = dock
    closed = getattr(window, "sig_window_closed", None)
    if closed is not None:
        closed.connect(panel.stop_all_soon)
    return panel


def quick_add_tools(store: Any) -> list[Any]:
    """Return the cached tools as the canvas quick-add's own ``ToolEntry`` objects."""
    from studio.canvas.quick_add import ToolEntry as QuickAddTool

    return [
        QuickAddTool(
            instance_id=entry.instance_id,
            instance_name=entry.instance_name,
            server_url=entry.server_url,
            tool_name=entry.tool_name,
            description=entry.description,
            input_schema=dict(entry.input_schema),
        )
        for entry in tool_entries(store)
    ]
