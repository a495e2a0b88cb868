"""Editor flows driven through the real main window the way a user works: canvas, inspector, versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QLineEdit, QMessageBox

from studio.app.main_window import MainWindow
from tests.conftest import lua_step


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    main_window = MainWindow(store_path=tmp_path / "studio.db", recovery_dir=tmp_path / "recovery")
    qtbot.addWidget(main_window)
    main_window.show()
    qtbot.waitExposed(main_window)
    return main_window


def open_steps(window: MainWindow, tmp_path: Path, steps: list[dict[str, Any]]) -> None:
    path = tmp_path / "flows.workflow.json"
    path.write_text(json.dumps({"schema_version": 1, "name": "Flows", "steps": steps}), encoding="utf-8")
    assert window.open_workflow(path)


def loop_step(step_id: str, items: str, body: list[dict[str, Any]], **config: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "for_each", "config": {"items": items, "steps": body, **config}}


def step_ids(window: MainWindow) -> list[str]:
    return [step.id for step in window.document.workflow.iter_steps()]


def test_delete_loop_warns_about_body_readers(window: MainWindow, tmp_path: Path) -> None:
    open_steps(window, tmp_path, [
        lua_step("numbers", "return {1, 2}"),
        loop_step("loop", "{{steps.numbers.result}}", [
            lua_step("square", "return x * x", {"x": "{{item}}"}),
            lua_step("label", "return v", {"v": "{{steps.square.result}}"}),
        ]),
        lua_step("report", "return v", {"v": "{{steps.square.result}}"}),
    ])
    window.removal_box = None
    window.view.set_selected_step_ids(["loop"])

    window.features.canvas_editing.delete_selection()

    box = window.removal_box
    assert isinstance(box, QMessageBox), "deleting a loop whose body is read outside removed it without asking"
    assert "'report'" in box.text()
    assert "'label'" not in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert "loop" in step_ids(window)
    window.document.mark_clean()


def test_read_only_version_rejects_edits_cleanly(window: MainWindow, qtbot: Any) -> None:
    library = window.features.library
    assert library.new_workflow("Versioned") is not None
    window.features.canvas_editing.add_step_type_at_center("lua_script")
    window.document.set_step_field("lua-script", "config.source", "return 1")
    assert library.save_draft()
    dialog = library.ask_publish()
    assert dialog is not None
    dialog.note_edit.setPlainText("first")
    dialog.accept()
    assert dialog.version is not None
    library.versions.refresh()
    assert library.open_version(1)
    document = window.document
    assert document.read_only
    before = document.workflow.model_dump()
    window.view.set_selected_step_ids(["lua-script"])

    for key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
        qtbot.keyClick(window.view, key)

    dirty = document.is_dirty()
    undo_text = document.undo_stack.undoText()
    document.mark_clean()
    assert document.workflow.model_dump() == before
    assert not dirty, "a rejected delete marked the read-only version as changed"
    assert undo_text == "", f"a rejected delete left the undo step '{undo_text}'"
    assert "read-only" in window.statusBar().currentMessage()


def test_failed_splice_leaves_edges_and_history(window: MainWindow, tmp_path: Path) -> None:
    open_steps(window, tmp_path, [lua_step("first", "return 1"), lua_step("second", "return 2"),
                                  lua_step("spare", "return 3")])
    document = window.document
    document.connect("first", "second")
    document.connect("second", "spare")
    depth = document.undo_stack.index()
    editing = window.features.canvas_editing

    with editing.reporting_errors(), document.macro("Insert spare between first and second"):
        document.disconnect("first", "second")
        document.connect("first", "spare")
        document.connect("spare", "second")  # closes the cycle spare -> second -> spare

    window.document.mark_clean()
    edges = {(edge.source, edge.target) for edge in document.workflow.edges}
    assert edges == {("first", "second"), ("second", "spare")}
    assert document.undo_stack.index() == depth
    assert not document.undo_stack.canRedo()
    window.document.mark_clean()


def test_default_docks_leave_canvas_room(window: MainWindow, qtbot: Any) -> None:
    assert (window.width(), window.height()) == (1440, 900)
    docks = {dock.objectName(): dock for dock in window.findChildren(QDockWidget)}

    assert window.dockWidgetArea(docks["runs-dock"]) == Qt.DockWidgetArea.BottomDockWidgetArea
    assert docks["versions-dock"] in window.tabifiedDockWidgets(docks["workflows-dock"])
    assert docks["inspector-dock"] in window.tabifiedDockWidgets(docks["step-details-dock"])
    assert docks["usages-dock"] in window.tabifiedDockWidgets(docks["problems-dock"])
    assert docks["timeline-dock"].isVisible()
    assert docks["runs-dock"].isVisible()
    assert not docks["inspector-dock"].visibleRegion().isEmpty(), "the Inspector tab is not the raised one"
    qtbot.waitUntil(lambda: window.view.width() >= 700, timeout=2000)
    assert window.view.height() >= 450, f"canvas is {window.view.width()}x{window.view.height()}"
    window.document.mark_clean()


def test_overview_selection_drops_removed_steps(window: MainWindow, tmp_path: Path, qtbot: Any) -> None:
    open_steps(window, tmp_path, [lua_step(f"step{index}", "return 1") for index in range(320)])
    view = window.view
    window.features.canvas_editing.zoom_to_fit()
    assert view.overview, f"zoom {view.zoom():.3f} did not reach overview mode"
    view.set_selected_step_ids(["step1", "step2"])

    window.document.remove_steps(["step1"])
    selected = view.selected_step_ids()
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    remaining = step_ids(window)
    window.document.mark_clean()

    assert selected == ["step2"]
    assert "step2" not in remaining
    assert len(remaining) == 318


def test_inspector_rename_in_loop_keeps_selection(window: MainWindow, tmp_path: Path, qtbot: Any) -> None:
    open_steps(window, tmp_path, [
        lua_step("numbers", "return {1}"),
        loop_step("loop", "{{steps.numbers.result}}", [lua_step("inner", "return x", {"x": "{{item}}"})], output="inner"),
    ])
    inspector = window.features.inspector.panel
    window.view.set_selected_step_ids(["inner"])
    field = inspector.findChild(QLineEdit, "input:id")
    assert field is not None

    field.setFocus()
    field.selectAll()
    qtbot.keyClicks(field, "core")
    qtbot.keyClick(field, Qt.Key.Key_Return)
    renamed = (window.view.selected_step_ids(), inspector.step_id, window.document.find_step("loop").config.output)
    window.document.undo_stack.undo()
    undone = (window.view.selected_step_ids(), inspector.step_id, window.document.find_step("loop").config.output)
    window.document.mark_clean()

    assert renamed == (["core"], "core", "core")
    assert undone == (["inner"], "inner", "inner")
