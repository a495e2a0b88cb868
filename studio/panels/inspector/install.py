"""Window integration of the inspector: its dock, the Usages dock, selection following and actions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLineEdit, QMainWindow, QMenu, QMenuBar

from studio.model.output_shapes import OutputSchemaSource
from studio.model.validation import ToolCatalog
from studio.panels.inspector.editors import FieldEditor
from studio.panels.inspector.navigation import select_step
from studio.panels.inspector.panel import InspectorPanel
from studio.panels.inspector.tool_schemas import tool_schemas_from_store
from studio.panels.inspector.usages import UsagesPanel
from studio.panels.inspector.values import last_run_results

logger = logging.getLogger(__name__)

FINISHED_RUN_STATES = frozenset({"completed", "failed", "stopped"})


@dataclass
class InspectorInstall:
    """The panels, docks and actions that :func:`install_inspector` added to a window."""

    panel: InspectorPanel
    dock: QDockWidget
    usages: UsagesPanel
    usages_dock: QDockWidget
    action_find_usages: QAction
    action_rename: QAction

    def reload_last_results(self) -> None:
        """Read the step results of the newest run of the shown workflow for template completion."""
        self.panel.last_results = _read_last_results(self.panel.window())


def install_inspector(
    window: Any,
    *,
    catalog: ToolCatalog | None = None,
    schemas: OutputSchemaSource | None = None,
) -> InspectorInstall:
    """Add the Inspector and Usages docks and the Find usages (Shift+F12) and Rename step (F2) actions.

    ``window`` needs ``document`` (an EditorDocument) and ``scene`` (a WorkflowScene). ``view`` and
    ``store`` are used when present. Without ``catalog`` and ``schemas`` the tool schemas come from
    the store's MCP tool cache. The inspector follows the scene selection and is stored as
    ``window.inspector``.
    """
    document = window.document
    scene = window.scene
    panel = InspectorPanel(document, window)
    if catalog is None and schemas is None:
        catalog, schemas = tool_schemas_from_store(getattr(window, "store", None))
    panel.catalog = catalog
    panel.schemas = schemas
    dock = _dock(window, "Inspector", "inspector-dock", panel, Qt.DockWidgetArea.RightDockWidgetArea)
    usages = UsagesPanel(window)
    usages_dock = _dock(window, "Usages", "usages-dock", usages, Qt.DockWidgetArea.BottomDockWidgetArea)

    view = getattr(window, "view", None)

    def on_selection_changed() -> None:
        # While a window is destroyed, the scene emits its last selection change from its destructor.
        if not shiboken6.isValid(scene) or not shiboken6.isValid(panel):
            return
        if view is not None and view.scene() is scene and hasattr(view, "selected_step_ids"):
            selected = view.selected_step_ids()
        else:
            selected = [item.step_id for item in scene.selectedItems() if hasattr(item, "step_id")]
        step_id = selected[0] if len(selected) == 1 else None
        if step_id != panel.step_id:
            panel.show_step(step_id)

    def on_find_usages(step_id: str) -> None:
        usages.show_usages(document.workflow, step_id)
        usages_dock.show()
        usages_dock.raise_()

    def on_usage_activated(step_id: str, field_path: str) -> None:
        select_step(window, step_id)
        if panel.step_id != step_id:
            panel.show_step(step_id)
        panel.focus_field(field_path)

    scene.selectionChanged.connect(on_selection_changed)
    panel.sig_find_usages_requested.connect(on_find_usages)
    usages.sig_usage_activated.connect(on_usage_activated)

    action_find_usages = QAction("Find &usages", window, shortcut=QKeySequence("Shift+F12"))
    def on_find_usages_triggered() -> None:
        if panel.step_id is not None:
            on_find_usages(panel.step_id)

    action_find_usages.triggered.connect(on_find_usages_triggered)
    action_rename = QAction("Re&name step", window, shortcut=QKeySequence("F2"))
    action_rename.triggered.connect(lambda: _focus_id_editor(panel, dock))
    menu = _edit_menu(window)
    menu.addSeparator()
    menu.addAction(action_find_usages)
    menu.addAction(action_rename)
    window.addAction(action_find_usages)
    window.addAction(action_rename)

    install = InspectorInstall(panel, dock, usages, usages_dock, action_find_usages, action_rename)
    document.sig_reset.connect(install.reload_last_results)
    if hasattr(window, "sig_run_state_changed"):
        window.sig_run_state_changed.connect(
            lambda state: install.reload_last_results() if state in FINISHED_RUN_STATES else None
        )
    install.reload_last_results()
    window.inspector = panel
    return install


def _dock(window: QMainWindow, title: str, name: str, widget: Any, area: Qt.DockWidgetArea) -> QDockWidget:
    dock = QDockWidget(title, window)
    dock.setObjectName(name)
    dock.setWidget(widget)
    window.addDockWidget(area, dock)
    return dock


def _edit_menu(window: Any) -> QMenu:
    """Return the window's Edit menu, adding one when the window has none."""
    for action in window.menuBar().actions():
        menu = action.menu()
        if isinstance(menu, QMenu) and action.text().replace("&", "") == "Edit":
            return menu
    menu_bar: QMenuBar = window.menuBar()
    return menu_bar.addMenu("&Edit")


def _focus_id_editor(panel: InspectorPanel, dock: QDockWidget) -> None:
    if panel.step_id is None:
        return
    dock.show()
    dock.raise_()
    editor = panel.editors.get("id")
    if isinstance(editor, FieldEditor) and isinstance(editor.input, QLineEdit):
        editor.input.setFocus()
        editor.input.selectAll()


def _read_last_results(window: Any) -> dict[str, Any]:
    store = getattr(window, "store", None)
    document = getattr(window, "document", None)
    if store is None or document is None:
        return {}
    try:
        return last_run_results(store, document.workflow_id)
    except Exception:
        logger.exception("could not read the last run's step results for template completion")
        return {}
