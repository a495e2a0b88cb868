"""The Connections panel and its window integration."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QMenu

from studio.panels.connections.dialog import ConnectionDialog, ConnectionForm
from studio.panels.connections.panel import ConnectionsPanel

logger = logging.getLogger(__name__)

__all__ = ["ConnectionDialog", "ConnectionForm", "ConnectionsPanel", "install_connections_panel"]


def install_connections_panel(window: Any) -> ConnectionsPanel:
    """Add the Connections dock (hidden at first) and a View menu entry that shows it to ``window``.

    The vault opens when the dock is first shown, so an encrypted secrets file costs no start-up time.

    ``window`` needs ``store`` and the ``QMainWindow`` methods ``addDockWidget`` and ``menuBar``.
    """
    panel = ConnectionsPanel(window.store, open_vault_now=False, parent=window)
    dock = QDockWidget("Connections", window)
    dock.setObjectName("connections-dock")
    dock.setWidget(panel)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    dock.hide()
    dock.visibilityChanged.connect(lambda visible: panel.ensure_vault() if visible else None)

    action: QAction = dock.toggleViewAction()
    action.setText("&Connections")
    _view_menu(window).addAction(action)
    window.connections_panel = panel
    window.connections_dock = dock
    logger.debug("Installed the Connections panel")
    return panel


def _view_menu(window: Any) -> QMenu:
    for action in window.menuBar().actions():
        menu = action.menu()
        if isinstance(menu, QMenu) and menu.title().replace("&", "") == "View":
            return menu
    menu_bar = window.menuBar()
    created: QMenu = menu_bar.addMenu("&View")
    return created
