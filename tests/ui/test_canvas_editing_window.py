"""Canvas editing on the real main window: menus, docks and shortcuts without clashes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication

from studio.app.main_window import MainWindow
from studio.canvas.shortcuts import ACTIONS


def test_install_on_main_window(qtbot: Any, tmp_path: Path, write_workflow: Any, pipeline: dict[str, Any]) -> None:
    window = MainWindow(store_path=tmp_path / "studio.db", recovery_dir=tmp_path / "recovery")
    qtbot.addWidget(window)
    editing = window.features.canvas_editing
    window.show()
    qtbot.waitExposed(window)
    window.open_workflow(write_workflow(pipeline))

    menus = {action.text().replace("&", ""): action.menu() for action in window.menuBar().actions()}
    assert "Arrange" in menus
    arrange_texts = [action.text() for action in menus["Arrange"].actions()]  # type: ignore[union-attr]
    assert "Align left" in arrange_texts
    assert "Auto-layout" in arrange_texts
    assert editing.palette is not None and editing.palette.isVisible()

    canvas_keys = {
        QKeySequence(shortcut).toString(): spec.name for spec in ACTIONS for shortcut in spec.shortcuts
    }
    for action in window.findChildren(QAction):
        if action.objectName().startswith("canvas-"):
            continue
        for sequence in action.shortcuts():
            key = sequence.toString()
            assert key not in canvas_keys, f"window action '{action.text()}' and canvas '{canvas_keys[key]}' share {key}"

    window.activateWindow()
    window.view.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is window.view)
    zoom = window.view.zoom()
    qtbot.keyClick(window.view, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert window.view.zoom() > zoom
    window.view.set_selected_step_ids(["numbers"])
    qtbot.keyClick(window.view, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert len(window.document.workflow.steps) == 5
    assert window.document.is_dirty()
    # A dirty document makes closing the window ask Save / Discard / Cancel, which would block teardown.
    window.document.mark_clean()
