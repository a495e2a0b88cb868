"""Attach the editor's and the project's panels to the main window, and keep them in step with each other."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from studio.app.live_validation import LiveValidationInstall, install_live_validation
from studio.canvas.editing import CanvasEditing, install_canvas_editing
from studio.panels.connections import ConnectionsPanel, install_connections_panel
from studio.panels.import_export import ImportExport, install_import_export
from studio.panels.inspector import InspectorInstall, confirm_step_removal, install_inspector
from studio.panels.inspector.tool_schemas import tool_schemas_from_store
from studio.panels.mcp import McpPanel, install_mcp_panels, quick_add_tools
from studio.panels.workflows import WorkflowLibrary, install_workflow_library

logger = logging.getLogger(__name__)


@dataclass
class WindowFeatures:
    """The panels and controllers :func:`install_window_features` added to a window."""

    canvas_editing: CanvasEditing
    inspector: InspectorInstall
    live_validation: LiveValidationInstall
    library: WorkflowLibrary
    import_export: ImportExport
    mcp: McpPanel
    connections: ConnectionsPanel
    store: Any

    def refresh_tool_schemas(self) -> None:
        """Re-read the MCP tool cache, so checks, forms and completion follow started or removed instances."""
        catalog, schemas = tool_schemas_from_store(self.store)
        self.live_validation.live.set_catalog(catalog)
        self.inspector.panel.catalog = catalog
        self.inspector.panel.schemas = schemas
        logger.debug("MCP tool schemas refreshed for validation and the inspector")


def install_window_features(window: Any) -> WindowFeatures:
    """Add canvas editing, the inspector, Problems, workflows, import/export, MCP and connections to ``window``.

    ``window`` is a MainWindow after its document, scene, view, store, menus and editor actions
    exist: the canvas actions join the Edit menu the editor actions made, and import/export joins
    ``window.file_menu``.
    """
    mcp = install_mcp_panels(window)
    canvas_editing = install_canvas_editing(window, tool_entries=lambda: quick_add_tools(window.store))
    inspector = install_inspector(window)
    live_validation = install_live_validation(window)
    library = install_workflow_library(window)
    import_export = install_import_export(window)
    connections = install_connections_panel(window)
    features = WindowFeatures(
        canvas_editing, inspector, live_validation, library, import_export, mcp, connections, window.store
    )

    def confirm_removal(step_ids: list[str], delete: Any) -> None:
        # The canvas asks the same question as the inspector before it deletes steps others read.
        window.removal_box = confirm_step_removal(window, window.document, step_ids, removal=delete)

    canvas_editing.confirm_removal = confirm_removal
    mcp.sig_tools_changed.connect(features.refresh_tool_schemas)
    mcp.sig_instances_changed.connect(features.refresh_tool_schemas)
    return features
