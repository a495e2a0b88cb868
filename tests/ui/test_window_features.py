"""The main window with every panel attached: docks, unique shortcuts, and panels that follow each other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QMessageBox

from studio.app.main_window import MainWindow
from studio.engine.executors.mcp_model import ToolInfo
from studio.mcp.catalog import add_entry
from studio.mcp.instances import create_instance
from studio.mcp.tool_cache import cache_tools
from tests.conftest import lua_step


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    main_window = MainWindow(store_path=tmp_path / "studio.db", recovery_dir=tmp_path / "recovery")
    qtbot.addWidget(main_window)
    main_window.show()
    qtbot.waitExposed(main_window)
    return main_window


def open_document(window: MainWindow, tmp_path: Path, steps: list[dict[str, Any]]) -> None:
    path = tmp_path / "features.workflow.json"
    path.write_text(json.dumps({"schema_version": 1, "name": "Features", "steps": steps}), encoding="utf-8")
    assert window.open_workflow(path)


def test_every_panel_has_a_dock(window: MainWindow) -> None:
    titles = {dock.windowTitle() for dock in window.findChildren(QDockWidget)}

    for title in ("Inspector", "Problems", "Usages", "MCP servers", "Connections", "Workflows", "Versions"):
        assert title in titles, f"no '{title}' dock in {sorted(titles)}"


def test_shortcuts_are_unique(window: MainWindow) -> None:
    owners: dict[str, str] = {}
    for action in window.findChildren(QAction):
        for sequence in action.shortcuts():
            key = sequence.toString()
            name = action.text() or action.objectName()
            assert key not in owners, f"'{name}' and '{owners[key]}' share the shortcut {key}"
            owners[key] = name


def test_canvas_delete_asks_when_step_is_read(window: MainWindow, tmp_path: Path, qtbot: Any) -> None:
    open_document(
        window,
        tmp_path,
        [lua_step("source", "return 1"), lua_step("reader", "return v", {"v": "{{steps.source.result}}"})],
    )
    editing = window.features.canvas_editing
    window.view.set_selected_step_ids(["source"])

    editing.delete_selection()

    box = window.removal_box
    assert isinstance(box, QMessageBox)
    assert "'reader'" in box.text()
    assert [step.id for step in window.document.workflow.steps] == ["source", "reader"]
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert [step.id for step in window.document.workflow.steps] == ["source", "reader"]

    editing.delete_selection()
    removal = window.removal_box
    remove = next(button for button in removal.buttons() if button.text() == "Remove")
    remove.click()
    assert [step.id for step in window.document.workflow.steps] == ["reader"]
    window.document.undo_stack.undo()
    assert [step.id for step in window.document.workflow.steps] == ["source", "reader"]
    window.document.mark_clean()


def test_canvas_delete_of_unread_step_is_immediate(window: MainWindow, tmp_path: Path) -> None:
    open_document(window, tmp_path, [lua_step("alone", "return 1"), lua_step("other", "return 2")])
    window.removal_box = None
    window.view.set_selected_step_ids(["alone"])

    window.features.canvas_editing.delete_selection()

    assert window.removal_box is None
    assert [step.id for step in window.document.workflow.steps] == ["other"]
    window.document.mark_clean()


def test_tool_cache_reaches_validation_and_inspector(window: MainWindow, tmp_path: Path) -> None:
    store = window.store
    entry = add_entry(store, "search server", "stdio", command="/bin/true")
    instance = create_instance(store, entry, name="search")
    schema = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
    before = window.features.inspector.panel.catalog
    assert before is None or before.input_schema(instance.id, None, "search") is None
    cache_tools(store, instance.id, [ToolInfo("search", "Search", schema, None)], {"name": "search server"})

    window.features.mcp.sig_tools_changed.emit()

    catalog = window.features.inspector.panel.catalog
    assert catalog is not None
    assert catalog.input_schema(instance.id, None, "search") == schema
    assert window.features.live_validation.live.validator.catalog is catalog
