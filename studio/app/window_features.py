"""Attach the editor's and the project's panels to the main window, and keep them in step with each other."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QMainWindow

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
        # The canvas shows the inspector's confirmation before it deletes steps that others read.
        window.removal_box = confirm_step_removal(window, window.document, step_ids, removal=delete)

    canvas_editing.confirm_removal = confirm_removal
    # Connected after the workflow library, whose reset handler sets read_only for opened versions.
    window.document.sig_reset.connect(lambda: canvas_editing.set_editable(not window.document.read_only))
    mcp.sig_tools_changed.connect(features.refresh_tool_schemas)
    mcp.sig_instances_changed.connect(features.refresh_tool_schemas)
    arrange_default_docks(window)
    return features


def arrange_default_docks(window: QMainWindow) -> None:
    """Place the docks so the canvas keeps most of a 1440x900 window.

    The left column keeps the step palette above Workflows and Versions as tabs. The wide Runs
    table moves to the bottom row between Timeline/Event log and Problems/Usages. Inspector shares
    the right column's tabs with Step details and History and is raised, because editing needs it
    most. A dock the window lacks is skipped.
    """
    docks = {dock.objectName(): dock for dock in window.findChildren(QDockWidget)}

    def tab(first: str, *others: str) -> None:
        if first not in docks:
            return
        for name in others:
            if name in docks:
                window.tabifyDockWidget(docks[first], docks[name])

    # Re-adding a dock appends it at the right end of the bottom row. splitDockWidget would add it
    # to the Timeline tab group instead, because the Timeline dock is tabbed.
    for name in ("runs-dock", "problems-dock"):
        if name in docks:
            window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, docks[name], Qt.Orientation.Horizontal)
    tab("problems-dock", "usages-dock")
    tab("workflows-dock", "versions-dock")
    tab("step-details-dock", "inspector-dock")
    for name in ("timeline-dock", "problems-dock", "workflows-dock", "inspector-dock"):
        if name in docks:
            docks[name].raise_()
    window.installEventFilter(_FirstShowSizer(window, docks))


class _FirstShowSizer(QObject):
    """Give the bottom row and the Problems column their default sizes once the window is first shown.

    Dock sizes only stick once the window has its real size. The resize runs on the next event
    loop turn, so it comes after the sizes the main window's own ``showEvent`` sets.
    """

    BOTTOM_SHARE = 0.25
    PROBLEMS_WIDTH = 320

    def __init__(self, window: QMainWindow, docks: dict[str, QDockWidget]) -> None:
        super().__init__(window)
        self._window = window
        self._docks = docks

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._window and event.type() == QEvent.Type.Show:
            self._window.removeEventFilter(self)
            QTimer.singleShot(0, self._resize)
        return False

    def _resize(self) -> None:
        window = self._window
        bottom = [self._docks[name] for name in ("timeline-dock",) if name in self._docks]
        if bottom:
            height = max(220, int(window.height() * self.BOTTOM_SHARE))
            window.resizeDocks(bottom, [height], Qt.Orientation.Vertical)
        if "problems-dock" in self._docks:
            window.resizeDocks([self._docks["problems-dock"]], [self.PROBLEMS_WIDTH], Qt.Orientation.Horizontal)
        view = getattr(window, "view", None)
        if view is not None:
            # The canvas changed size, so fit the workflow again.
            view.zoom_to_fit()
