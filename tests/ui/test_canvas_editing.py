"""Canvas editing driven by mouse and keyboard: adding, connecting, moving, clipboard, arranging, deleting."""

from __future__ import annotations

import gc
import sys
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import QApplication

from studio.canvas.node_item import PORT_INPUT, PORT_OUTPUT, NodeItem
from studio.canvas.quick_add import ToolEntry
from studio.canvas.shortcuts import ACTIONS, help_html, shortcut_text
from studio.canvas.view import STEP_TYPE_MIME
from studio.model.document import workflow_from_data
from studio.model.workflow import McpCallStep, Workflow
from tests.ui.canvas_helpers import (
    CTRL,
    LEFT,
    EditorWindow,
    center_point,
    click,
    drag,
    editing_of,
    hover,
    node,
    port_point,
    quick_add,
    tab_add_at,
    top_level_edges,
    view_point,
    window,
)

__all__ = ["window"]  # the fixture, imported so pytest finds it here

def test_build_ten_steps_by_hand(qtbot: Any, window: EditorWindow) -> None:
    editing = editing_of(window)
    document = window.document
    view = window.view

    # 1: the palette's double-click adds a step in the middle of the canvas.
    assert editing.palette is not None
    palette_list = editing.palette.list
    item = editing.palette.item_for("lua_script")
    assert item is not None
    rect = palette_list.visualItemRect(item)
    # A real double-click starts with a click; item views ignore a double-click on an unpressed item.
    qtbot.mouseClick(palette_list.viewport(), LEFT, pos=rect.center())
    qtbot.mouseDClick(palette_list.viewport(), LEFT, pos=rect.center())
    assert [step.type for step in document.workflow.steps] == ["lua_script"]
    first = document.workflow.steps[0].id
    assert view.selected_step_ids() == [first]

    # 2-4: dragging from an output port onto empty canvas opens quick-add and adds a connected step.
    previous = first
    chain = [first]
    for query in ("llm", "human", "lua"):
        start = port_point(window, previous, PORT_OUTPUT)
        drag(qtbot, window, start, start + QPoint(120, 0))
        quick_add(qtbot, editing, query)
        added = [step.id for step in document.workflow.steps if step.id not in chain]
        assert len(added) == 1
        chain.append(added[0])
        assert (previous, added[0]) in top_level_edges(window)
        previous = added[0]
    assert [document.find_step(step_id).type for step_id in chain] == ["lua_script", "llm_call", "human_task", "lua_script"]

    # 5-8: Tab quick-add at the mouse position, in a row below the chain.
    below = view_point(window, node(window, first).sceneBoundingRect().bottomLeft() + QPointF(110.0, 250.0))
    loose = []
    for index in range(4):
        point = below + QPoint(index * 150, 0)
        expected = view.mapToScene(point)
        loose.append(tab_add_at(qtbot, window, editing, point, "lua script"))
        placed = node(window, loose[-1]).mapRectToScene(0.0, 0.0, NodeItem.WIDTH, NodeItem.HEIGHT).center()
        assert abs(placed.x() - expected.x()) < 1.0
        assert abs(placed.y() - expected.y()) < 1.0
    assert all(document.find_step(step_id).type == "lua_script" for step_id in loose)

    # 9: a palette drop lands where it was dropped.
    drop_at = below + QPoint(0, 220)
    mime = QMimeData()
    mime.setData(STEP_TYPE_MIME, b"llm_call")
    enter = QDragEnterEvent(drop_at, Qt.DropAction.CopyAction, mime, LEFT, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view.viewport(), enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(drop_at), Qt.DropAction.CopyAction, mime, LEFT, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view.viewport(), drop)
    dropped = [step.id for step in document.workflow.steps if step.id not in chain + loose]
    assert len(dropped) == 1
    assert abs(node(window, dropped[0]).sceneBoundingRect().center().y() - view.mapToScene(drop_at).y()) < 2.0

    # Connect two existing steps by dragging from an output port to an input port.
    drag(qtbot, window, port_point(window, loose[0], PORT_OUTPUT), port_point(window, loose[1], PORT_INPUT))
    assert (loose[0], loose[1]) in top_level_edges(window)
    # Dragging backwards from an input port onto a node body connects the other way round.
    drag(qtbot, window, port_point(window, loose[2], PORT_INPUT), center_point(window, loose[1]))
    assert (loose[1], loose[2]) in top_level_edges(window)

    # 10: copy and paste two connected steps; the copy keeps the edge among them.
    click(qtbot, window, center_point(window, loose[0]))
    click(qtbot, window, center_point(window, loose[1]), CTRL)
    assert sorted(view.selected_step_ids()) == sorted(loose[:2])
    qtbot.keyClick(view, Qt.Key.Key_C, CTRL)
    assert "workflow-studio/fragment" in QGuiApplication.clipboard().text()
    hover(window, below + QPoint(0, 420))
    qtbot.keyClick(view, Qt.Key.Key_V, CTRL)
    pasted = view.selected_step_ids()
    assert len(pasted) == 2
    assert not set(pasted) & set(loose)
    assert len(document.workflow.steps) == 11
    pasted_edges = {(s, t) for s, t in top_level_edges(window) if s in pasted and t in pasted}
    assert len(pasted_edges) == 1

    # Delete one pasted step with the Delete key: ten steps remain and its edge goes with it.
    click(qtbot, window, center_point(window, pasted[0]))
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert len(document.workflow.steps) == 10
    assert not any(pasted[0] in edge for edge in top_level_edges(window))

    # Move one node with a drag: one undo step, undone and redone.
    target = loose[3]
    before = node(window, target).pos()
    depth = document.undo_stack.count()
    drag(qtbot, window, center_point(window, target), center_point(window, target) + QPoint(60, 90))
    assert document.undo_stack.count() == depth + 1
    moved = node(window, target).pos()
    assert abs(moved.x() - before.x() - 60 / view.zoom()) < 2.0
    assert abs(moved.y() - before.y() - 90 / view.zoom()) < 2.0
    position = document.find_step(target).position
    assert position is not None and (position.x, position.y) == (moved.x(), moved.y())
    document.undo_stack.undo()
    assert node(window, target).pos() == before
    document.undo_stack.redo()
    assert node(window, target).pos() == moved

    # Align three steps to the left with the keyboard shortcut.
    click(qtbot, window, center_point(window, loose[0]))
    for step_id in loose[1:3]:
        click(qtbot, window, center_point(window, step_id), Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(view, Qt.Key.Key_Left, CTRL | Qt.KeyboardModifier.AltModifier)
    lefts = {round(node(window, step_id).pos().x(), 3) for step_id in loose[:3]}
    assert len(lefts) == 1
    document.undo_stack.undo()
    assert len({round(node(window, step_id).pos().x(), 3) for step_id in loose[:3]}) == 3

    # Auto-layout of the whole graph puts every source left of its target.
    view.scene().clearSelection()
    qtbot.keyClick(view, Qt.Key.Key_L, CTRL | Qt.KeyboardModifier.ShiftModifier)
    for edge in window.scene.edge_items().values():
        assert edge.source.sceneBoundingRect().right() < edge.target.sceneBoundingRect().left(), edge.key
    assert len(document.workflow.steps) == 10
    assert all(step.position is not None for step in document.workflow.steps)


def test_drag_on_edge_splices_step(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({
        "schema_version": 1,
        "steps": [
            {"id": "a", "type": "lua_script", "position": {"x": 0, "y": 0}},
            {"id": "b", "type": "lua_script", "position": {"x": 700, "y": 0}},
            {"id": "c", "type": "lua_script", "position": {"x": 300, "y": 300}},
        ],
        "edges": [{"source": "a", "target": "b"}],
    }))
    editing_of(window)
    window.view.zoom_to_fit()
    middle = view_point(window, window.scene.edge_item("a", "b").path().pointAtPercent(0.5))  # type: ignore[union-attr]
    drag(qtbot, window, center_point(window, "c"), middle)
    assert top_level_edges(window) == {("a", "c"), ("c", "b")}
    window.document.undo_stack.undo()
    assert top_level_edges(window) == {("a", "b")}


def test_connect_rejects_cycle(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({
        "schema_version": 1,
        "steps": [
            {"id": "a", "type": "lua_script", "position": {"x": 0, "y": 0}},
            {"id": "b", "type": "lua_script", "position": {"x": 400, "y": 0}},
        ],
        "edges": [{"source": "a", "target": "b"}],
    }))
    editing = editing_of(window)
    messages: list[str] = []
    editing.sig_message_requested.connect(messages.append)
    drag(qtbot, window, port_point(window, "b", PORT_OUTPUT), port_point(window, "a", PORT_INPUT))
    assert top_level_edges(window) == {("a", "b")}
    assert messages and "cycle" in messages[0]


def test_rubber_band_selects_enclosed_nodes(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({
        "schema_version": 1,
        "steps": [
            {"id": "a", "type": "lua_script", "position": {"x": 0, "y": 0}},
            {"id": "b", "type": "lua_script", "position": {"x": 300, "y": 0}},
            {"id": "c", "type": "lua_script", "position": {"x": 0, "y": 400}},
        ],
    }))
    editing_of(window)
    window.view.zoom_to_fit()
    top_left = view_point(window, QPointF(-30.0, -30.0))
    bottom_right = view_point(window, QPointF(560.0, 120.0))
    drag(qtbot, window, top_left, bottom_right)
    assert sorted(window.view.selected_step_ids()) == ["a", "b"]
    drag(qtbot, window, view_point(window, QPointF(-30.0, 380.0)), view_point(window, QPointF(60.0, 420.0)),
         Qt.KeyboardModifier.ShiftModifier)
    assert sorted(window.view.selected_step_ids()) == ["a", "b", "c"]


def test_quick_add_offers_mcp_tools(qtbot: Any, window: EditorWindow) -> None:
    tool = ToolEntry(
        instance_id="files-1", instance_name="Local files", server_url="stdio:mcp-server-filesystem /tmp",
        tool_name="read_file", description="Read a text file",
        input_schema={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    )
    editing = editing_of(window, tool_entries=lambda: [tool])
    qtbot.keyClick(window.view, Qt.Key.Key_Tab)
    quick_add(qtbot, editing, "read_file local")
    [step] = window.document.workflow.steps
    assert isinstance(step, McpCallStep)
    assert (step.config.instance_id, step.config.tool) == ("files-1", "read_file")
    assert step.config.server_url == "stdio:mcp-server-filesystem /tmp"
    assert step.config.arguments == {"path": ""}


def test_cut_paste_across_windows(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({
        "schema_version": 1,
        "steps": [{"id": "a", "type": "lua_script"}, {"id": "b", "type": "lua_script", "config": {
            "source": "return x", "inputs": {"x": "{{steps.a.result}}"}}}],
    }))
    editing = editing_of(window)
    editing.select_all()
    qtbot.keyClick(window.view, Qt.Key.Key_X, CTRL)
    assert window.document.workflow.steps == []
    other = EditorWindow(Workflow(name="Other", steps=[]))
    qtbot.addWidget(other)
    other_editing = editing_of(other)
    other.document.load(workflow_from_data({"schema_version": 1, "steps": [{"id": "a", "type": "lua_script"}]}))
    new_ids = other_editing.paste_clipboard(QPointF(0.0, 0.0))
    assert len(new_ids) == 2
    renamed = other.document.find_step(new_ids[1])
    assert renamed.config.inputs == {"x": f"{{{{steps.{new_ids[0]}.result}}}}"}  # type: ignore[union-attr]


def test_duplicate_group_and_notes(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({
        "schema_version": 1,
        "steps": [{"id": "a", "type": "lua_script", "position": {"x": 0, "y": 0}}],
    }))
    editing = editing_of(window)
    window.view.set_selected_step_ids(["a"])
    qtbot.keyClick(window.view, Qt.Key.Key_D, CTRL)
    assert len(window.document.workflow.steps) == 2
    editing.select_all()
    qtbot.keyClick(window.view, Qt.Key.Key_G, CTRL)
    [group] = window.document.workflow.groups
    assert len(group.step_ids) == 2
    frame = editing.annotations.group_items()[group.id]
    assert frame.sceneBoundingRect().contains(node(window, "a").sceneBoundingRect())
    qtbot.keyClick(window.view, Qt.Key.Key_G, CTRL | Qt.KeyboardModifier.ShiftModifier)
    assert window.document.workflow.groups == []

    hover(window, center_point(window, "a") + QPoint(0, 200))
    qtbot.keyClick(window.view, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    [note] = window.document.workflow.notes
    note_item = editing.annotations.note_item(note.id)
    assert note_item is not None and note_item.editing
    # Keys that are canvas shortcuts elsewhere (F, M, Delete, Backspace) edit the text while a note has focus.
    zoom = window.view.zoom()
    qtbot.keyClicks(window.view, "Check the totals FMx")
    qtbot.keyClick(window.view, Qt.Key.Key_Backspace)
    qtbot.keyClick(window.view, Qt.Key.Key_Left)
    qtbot.keyClick(window.view, Qt.Key.Key_Delete)
    assert window.view.zoom() == zoom
    assert len(window.document.workflow.steps) == 2
    window.view.setFocus()
    window.scene.setFocusItem(None)
    assert window.document.workflow.notes[0].text == "Check the totals F"

    corner = view_point(window, note_item.mapToScene(QPointF(*note_item.size())) - QPointF(3.0, 3.0))
    drag(qtbot, window, corner, corner + QPoint(80, 40))
    resized = window.document.workflow.notes[0]
    assert resized.width > note.width
    assert resized.height > note.height


def test_zoom_shortcuts_and_help(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({"schema_version": 1, "steps": [{"id": "a", "type": "lua_script"}]}))
    editing = editing_of(window)
    view = window.view
    view.reset_zoom()
    qtbot.keyClick(view, Qt.Key.Key_Equal, CTRL)
    assert view.zoom() == pytest.approx(1.25)
    qtbot.keyClick(view, Qt.Key.Key_0, CTRL)
    assert view.zoom() == pytest.approx(1.0)
    qtbot.keyClick(view, Qt.Key.Key_Minus, CTRL)
    assert view.zoom() == pytest.approx(0.8)
    qtbot.keyClick(view, Qt.Key.Key_F1)
    assert editing.help_overlay.isVisible()
    text = editing.help_overlay.label.text()
    for spec in ACTIONS:
        assert spec.text in text
        if spec.shortcuts:
            assert shortcut_text(spec).split(", ")[0] in help_html()
    qtbot.keyClick(editing.help_overlay, Qt.Key.Key_Escape)
    assert not editing.help_overlay.isVisible()


def test_action_shortcuts_unique(qapp: QApplication) -> None:
    seen: dict[str, str] = {}
    for spec in ACTIONS:
        for shortcut in spec.shortcuts:
            assert shortcut not in seen, f"{shortcut} is used by {seen[shortcut]} and {spec.name}"
            seen[shortcut] = spec.name


def test_document_moves_keep_none_refcount(qtbot: Any, window: EditorWindow) -> None:
    # PySide6 6.12.0 on CPython 3.11 drops a reference to None per setPos() on items that send
    # geometry changes; 10,000 moves abort the interpreter there.
    window.document.load(workflow_from_data({"schema_version": 1, "steps": [
        {"id": "a", "type": "lua_script"}, {"id": "b", "type": "lua_script"}], "edges": [
        {"source": "a", "target": "b"}]}))
    editing_of(window)
    # Garbage of earlier tests freed during the loop would lower the count too, so collect it first
    # and keep the collector off while counting.
    gc.collect()
    gc.disable()
    try:
        before = sys.getrefcount(None)
        for index in range(10_000):
            window.document.move_steps({"a": (float(index % 100), float(index % 37))}, merge=True)
        window.document.end_move()
        after = sys.getrefcount(None)
    finally:
        gc.enable()
    assert after >= before - 50, f"None lost {before - after} references over 10,000 moves"
    assert window.document.undo_stack.count() == 1


def test_drop_on_edge_inserts_new_step(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({
        "schema_version": 1,
        "steps": [
            {"id": "a", "type": "lua_script", "position": {"x": 0, "y": 0}},
            {"id": "b", "type": "lua_script", "position": {"x": 800, "y": 0}},
        ],
        "edges": [{"source": "a", "target": "b"}],
    }))
    editing = editing_of(window)
    edge = window.scene.edge_item("a", "b")
    assert edge is not None
    middle = edge.path().pointAtPercent(0.5)
    editing.add_step_at(editing.create_step("llm_call"), middle)
    [new_id] = [step.id for step in window.document.workflow.steps if step.id not in ("a", "b")]
    assert top_level_edges(window) == {("a", new_id), (new_id, "b")}
    assert window.document.undo_stack.count() == 1


def test_delete_selected_edge(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({
        "schema_version": 1,
        "steps": [
            {"id": "a", "type": "lua_script", "position": {"x": 0, "y": 0}},
            {"id": "b", "type": "lua_script", "position": {"x": 500, "y": 200}},
        ],
        "edges": [{"source": "a", "target": "b"}],
    }))
    editing_of(window)
    window.view.zoom_to_fit()
    edge = window.scene.edge_item("a", "b")
    assert edge is not None
    click(qtbot, window, view_point(window, edge.path().pointAtPercent(0.5)))
    assert window.view.selected_edge_keys() == [("a", "b")]
    qtbot.keyClick(window.view, Qt.Key.Key_Delete)
    assert top_level_edges(window) == set()
    assert [step.id for step in window.document.workflow.steps] == ["a", "b"]


def test_note_drag_one_undo_step(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({
        "schema_version": 1,
        "steps": [{"id": "a", "type": "lua_script", "position": {"x": 0, "y": 0}}],
        "notes": [{"id": "n1", "text": "hello", "position": {"x": 0, "y": 300}}],
    }))
    editing = editing_of(window)
    window.view.reset_zoom()
    window.view.centerOn(QPointF(100.0, 200.0))
    note = editing.annotations.note_item("n1")
    assert note is not None
    start = view_point(window, note.mapToScene(QPointF(30.0, 30.0)))
    depth = window.document.undo_stack.count()
    drag(qtbot, window, start, start + QPoint(70, 40))
    moved = window.document.workflow.notes[0].position
    assert (moved.x, moved.y) == (70.0, 340.0)
    assert window.document.undo_stack.count() == depth + 1
    window.document.undo_stack.undo()
    assert note.pos() == QPointF(0.0, 300.0)


def test_rename_group_keeps_members(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({
        "schema_version": 1,
        "steps": [{"id": "a", "type": "lua_script"}, {"id": "b", "type": "lua_script"}],
        "groups": [{"id": "g1", "title": "Old", "step_ids": ["a", "b"]}],
    }))
    editing = editing_of(window)
    editing.rename_group("g1", "Inputs")
    [group] = window.document.workflow.groups
    assert (group.title, group.step_ids) == ("Inputs", ["a", "b"])
    window.document.undo_stack.undo()
    assert [g.title for g in window.document.workflow.groups] == ["Old"]


def test_zoom_to_selection(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({
        "schema_version": 1,
        "steps": [
            {"id": "a", "type": "lua_script", "position": {"x": 0, "y": 0}},
            {"id": "far", "type": "lua_script", "position": {"x": 9000, "y": 6000}},
        ],
    }))
    editing_of(window)
    window.view.reset_zoom()
    window.view.centerOn(node(window, "a"))
    window.view.set_selected_step_ids(["far"])
    qtbot.keyClick(window.view, Qt.Key.Key_F, Qt.KeyboardModifier.ShiftModifier)
    assert window.view.visible_scene_rect().contains(node(window, "far").sceneBoundingRect())
    assert window.view.zoom() == pytest.approx(1.0)
