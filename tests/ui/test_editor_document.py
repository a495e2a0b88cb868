"""Tests of the editor document: each undoable edit, the scene following it, dirty state and saving."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import lua_step, pipeline_document
from PySide6.QtCore import QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QMessageBox

from studio.app.main_window import MainWindow
from studio.canvas.document import EditorDocument
from studio.canvas.graph import workflow_edges
from studio.canvas.node_item import ContainerItem
from studio.canvas.scene import WorkflowScene
from studio.model.document import load_workflow, workflow_from_data
from studio.model.edits import EditError, copy_fragment, new_step
from studio.model.workflow import ForEachStep, LuaScriptStep, Workflow


@pytest.fixture
def document(qapp: QApplication) -> EditorDocument:
    editor = EditorDocument()
    editor.load(workflow_from_data(pipeline_document()))
    return editor


@pytest.fixture
def scene(document: EditorDocument) -> WorkflowScene:
    projection = WorkflowScene()
    projection.set_document(document)
    return projection


def edge_keys(scene: WorkflowScene) -> set[tuple[str, str]]:
    return set(scene.edge_items())


def explicit_edges(document: EditorDocument) -> list[tuple[str, str]]:
    return [(edge.source, edge.target) for edge in document.workflow.edges]


def undo(document: EditorDocument) -> None:
    document.undo_stack.undo()


def redo(document: EditorDocument) -> None:
    document.undo_stack.redo()


# -- steps ----------------------------------------------------------------------------------


def test_add_step_do_undo_redo(document: EditorDocument, scene: WorkflowScene) -> None:
    step = new_step("lua_script", document.workflow, title="Extra")
    assert document.add_step(step, (700.0, 40.0)) == "extra"
    item = scene.node_item("extra")
    assert item is not None
    assert (item.pos().x(), item.pos().y()) == (700.0, 40.0)
    undo(document)
    assert scene.node_item("extra") is None
    assert not document.has_step("extra")
    redo(document)
    assert scene.node_item("extra") is not None
    assert document.workflow.steps[-1].id == "extra"


def test_add_step_into_body(document: EditorDocument, scene: WorkflowScene) -> None:
    step = new_step("lua_script", document.workflow, title="Inside")
    document.add_step(step, (0.0, 200.0), container_id="loop")
    item = scene.node_item("inside")
    assert item is not None
    assert isinstance(item.parentItem(), ContainerItem)
    loop = document.find_step("loop")
    assert isinstance(loop, ForEachStep)
    assert loop.config.steps[-1].id == "inside"
    undo(document)
    assert scene.node_item("inside") is None


def test_add_step_rejects_taken_id(document: EditorDocument) -> None:
    with pytest.raises(EditError, match="'numbers' is already taken"):
        document.add_step(LuaScriptStep(id="numbers"), (0.0, 0.0))
    with pytest.raises(EditError, match="'total' is a lua_script step, not a for_each"):
        document.add_step(LuaScriptStep(id="fresh"), (0.0, 0.0), container_id="total")
    assert document.undo_stack.count() == 0


def test_remove_for_each_with_body(document: EditorDocument, scene: WorkflowScene) -> None:
    before_edges = edge_keys(scene)
    document.remove_steps(["loop"])
    for step_id in ("loop", "square", "label"):
        assert scene.node_item(step_id) is None
        assert not document.has_step(step_id)
    assert ("numbers", "loop") not in edge_keys(scene)
    assert ("loop", "total") not in edge_keys(scene)
    undo(document)
    assert [step.id for step in document.workflow.iter_steps()] == ["numbers", "loop", "square", "label", "total",
                                                                   "announce"]
    assert edge_keys(scene) == before_edges
    assert scene.node_item("square") is not None
    redo(document)
    assert scene.node_item("loop") is None


def test_remove_drops_edges_and_groups(document: EditorDocument, scene: WorkflowScene) -> None:
    group_id = document.group(["total", "announce"], "End")
    document.remove_steps(["announce"])
    assert explicit_edges(document) == []
    assert document.workflow.groups[0].id == group_id
    assert document.workflow.groups[0].step_ids == ["total"]
    assert ("total", "announce") not in edge_keys(scene)
    undo(document)
    assert explicit_edges(document) == [("total", "announce")]
    assert document.workflow.groups[0].step_ids == ["total", "announce"]
    assert ("total", "announce") in edge_keys(scene)


def test_remove_rejects_unknown_id(document: EditorDocument) -> None:
    with pytest.raises(EditError, match="'ghost'"):
        document.remove_steps(["total", "ghost"])
    assert document.has_step("total")


def test_move_do_undo_redo(document: EditorDocument, scene: WorkflowScene) -> None:
    item = scene.node_item("total")
    assert item is not None
    start = (item.pos().x(), item.pos().y())
    document.move_steps({"total": (500.0, 300.0)})
    assert (item.pos().x(), item.pos().y()) == (500.0, 300.0)
    position = document.find_step("total").position
    assert position is not None
    assert (position.x, position.y) == (500.0, 300.0)
    undo(document)
    assert document.find_step("total").position is None
    assert (item.pos().x(), item.pos().y()) == start
    redo(document)
    assert (item.pos().x(), item.pos().y()) == (500.0, 300.0)
    assert start != (500.0, 300.0)


def test_drag_moves_merge_into_one_step(document: EditorDocument, scene: WorkflowScene) -> None:
    for x in (10.0, 20.0, 30.0):
        document.move_steps({"total": (x, 0.0), "announce": (x + 300.0, 0.0)}, merge=True)
    document.end_move()
    assert document.undo_stack.count() == 1
    document.move_steps({"total": (99.0, 0.0)}, merge=True)
    document.end_move()
    assert document.undo_stack.count() == 2
    undo(document)
    position = document.find_step("total").position
    assert position is not None
    assert position.x == 30.0
    undo(document)
    assert document.find_step("total").position is None
    assert document.find_step("announce").position is None


def test_moves_without_merge_stay_separate(document: EditorDocument) -> None:
    document.move_steps({"total": (1.0, 0.0)})
    document.move_steps({"total": (2.0, 0.0)})
    assert document.undo_stack.count() == 2


def test_move_body_step_relayouts_container(document: EditorDocument, scene: WorkflowScene) -> None:
    container = scene.node_item("loop")
    assert isinstance(container, ContainerItem)
    document.move_steps({"square": (0.0, 0.0), "label": (0.0, 400.0)})
    square = scene.node_item("square")
    label = scene.node_item("label")
    assert square is not None
    assert label is not None
    assert label.pos().y() - square.pos().y() == 400.0
    assert scene.model_position("label") == (0.0, 400.0)
    assert container.size()[1] > 400.0


# -- edges ----------------------------------------------------------------------------------


def test_connect_and_disconnect(document: EditorDocument, scene: WorkflowScene) -> None:
    document.connect("numbers", "announce")
    assert ("numbers", "announce") in edge_keys(scene)
    edge = scene.edge_item("numbers", "announce")
    assert edge is not None
    assert not edge.implied
    undo(document)
    assert ("numbers", "announce") not in edge_keys(scene)
    redo(document)
    document.disconnect("numbers", "announce")
    assert ("numbers", "announce") not in edge_keys(scene)
    undo(document)
    assert ("numbers", "announce") in explicit_edges(document)


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ("total", "announce", "already connected"),
        ("announce", "total", "would create a cycle"),
        ("numbers", "square", "different scopes"),
        ("total", "total", "to itself"),
        ("ghost", "total", "'ghost'"),
    ],
)
def test_connect_rejects_bad_edges(document: EditorDocument, source: str, target: str, expected: str) -> None:
    with pytest.raises(EditError) as caught:
        document.connect(source, target)
    assert expected in str(caught.value)
    assert document.undo_stack.count() == 0


def test_disconnect_rejects_missing_edge(document: EditorDocument) -> None:
    with pytest.raises(EditError, match="no edge from 'numbers' to 'total'"):
        document.disconnect("numbers", "total")


def test_body_edges_connect(document: EditorDocument, scene: WorkflowScene) -> None:
    document.connect("square", "label")
    loop = document.find_step("loop")
    assert isinstance(loop, ForEachStep)
    assert [(edge.source, edge.target) for edge in loop.config.edges] == [("square", "label")]
    edge = scene.edge_item("square", "label")
    assert edge is not None
    assert not edge.implied


def test_splice_is_one_undo_step(document: EditorDocument, scene: WorkflowScene) -> None:
    step = new_step("lua_script", document.workflow, title="Middle")
    assert document.splice(step, "total", "announce", (400.0, 0.0)) == "middle"
    assert explicit_edges(document) == [("total", "middle"), ("middle", "announce")]
    assert {("total", "middle"), ("middle", "announce")} <= edge_keys(scene)
    assert document.undo_stack.count() == 1
    undo(document)
    assert explicit_edges(document) == [("total", "announce")]
    assert scene.node_item("middle") is None
    redo(document)
    assert scene.node_item("middle") is not None


# -- step content ---------------------------------------------------------------------------


def test_set_step_field_updates_item_and_edges(document: EditorDocument, scene: WorkflowScene) -> None:
    document.set_step_field("announce", "title", "Say done")
    item = scene.node_item("announce")
    assert item is not None
    assert item.title == "Say done"
    document.set_step_field("announce", "config.inputs.n", "{{steps.numbers.result}}")
    edge = scene.edge_item("numbers", "announce")
    assert edge is not None
    assert edge.implied
    undo(document)
    assert scene.edge_item("numbers", "announce") is None
    undo(document)
    assert item.title == "announce"
    document.set_step_field("announce", "retry.max_attempts", 3)
    assert document.find_step("announce").retry.max_attempts == 3


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("id", "other", "use rename_step"),
        ("type", "llm_call", "set_step for the type"),
        ("retry.max_attempts", 0, "invalid value 0 for 'retry.max_attempts'"),
        ("config.nothing.deeper", 1, "'config.nothing' does not exist"),
        ("config.bogus", 1, "invalid value 1 for 'config.bogus'"),
        ("config.inputs[x]", 1, "not a list index"),
    ],
)
def test_set_step_field_rejects_bad_input(document: EditorDocument, path: str, value: Any, expected: str) -> None:
    with pytest.raises(EditError) as caught:
        document.set_step_field("announce", path, value)
    assert expected in str(caught.value)
    assert document.undo_stack.count() == 0


def test_set_step_replaces_type(document: EditorDocument, scene: WorkflowScene) -> None:
    replacement = new_step("llm_call", document.workflow)
    document.set_step("announce", replacement.model_copy(update={"id": "announce"}))
    item = scene.node_item("announce")
    assert item is not None
    assert item.step_type == "llm_call"
    undo(document)
    assert scene.node_item("announce") is not None
    assert scene.node_item("announce").step_type == "lua_script"  # type: ignore[union-attr]
    with pytest.raises(EditError, match="cannot change the id"):
        document.set_step("announce", replacement)


def test_set_step_replaces_body(document: EditorDocument, scene: WorkflowScene) -> None:
    loop = document.find_step("loop")
    assert isinstance(loop, ForEachStep)
    clash = LuaScriptStep(id="total")
    changed = loop.model_copy(update={"config": loop.config.model_copy(update={"steps": [clash]})})
    with pytest.raises(EditError, match="'total' is already taken"):
        document.set_step("loop", changed)
    kept = loop.model_copy(update={"config": loop.config.model_copy(update={"steps": loop.config.steps[:1]})})
    document.set_step("loop", kept)
    assert not document.has_step("label")
    assert scene.node_item("label") is None
    assert scene.node_item("square") is not None
    document.undo_stack.undo()
    assert scene.node_item("label") is not None


def test_rename_follows_in_scene(document: EditorDocument, scene: WorkflowScene) -> None:
    document.rename_step("numbers", "values")
    assert scene.node_item("numbers") is None
    assert scene.node_item("values") is not None
    assert ("values", "loop") in edge_keys(scene)
    loop = document.find_step("loop")
    assert isinstance(loop, ForEachStep)
    assert loop.config.items == "{{steps.values.result}}"
    undo(document)
    assert scene.node_item("numbers") is not None
    assert ("numbers", "loop") in edge_keys(scene)
    assert document.find_step("loop").config.items == "{{steps.numbers.result}}"  # type: ignore[union-attr]


def test_rename_body_step_and_container(document: EditorDocument, scene: WorkflowScene) -> None:
    document.rename_step("square", "sq")
    document.rename_step("loop", "each-number")
    sq = scene.node_item("sq")
    assert sq is not None
    assert isinstance(sq.parentItem(), ContainerItem)
    assert sq.parentItem() is scene.node_item("each-number")
    assert ("sq", "label") in edge_keys(scene)
    assert ("each-number", "total") in edge_keys(scene)
    undo(document)
    undo(document)
    assert sorted(scene.node_items()) == ["announce", "label", "loop", "numbers", "square", "total"]


def test_rename_rejects_bad_ids(document: EditorDocument) -> None:
    with pytest.raises(EditError, match="'total' is already taken"):
        document.rename_step("numbers", "total")
    with pytest.raises(EditError, match="invalid step id 'Bad'"):
        document.rename_step("numbers", "Bad")
    with pytest.raises(EditError, match="'ghost'"):
        document.rename_step("ghost", "fine")


def test_duplicate_and_paste(document: EditorDocument, scene: WorkflowScene) -> None:
    assert document.duplicate(["loop"]) == ["loop-2"]
    for step_id in ("loop-2", "square-2", "label-2"):
        assert scene.node_item(step_id) is not None
    assert ("square-2", "label-2") in edge_keys(scene)
    fragment = copy_fragment(document.workflow, ["total", "announce"])
    new_ids = document.paste(fragment, (1000.0, 500.0))
    assert new_ids == ["total-2", "announce-2"]
    assert ("total-2", "announce-2") in explicit_edges(document)
    pasted = scene.node_item("total-2")
    assert pasted is not None
    undo(document)
    assert scene.node_item("total-2") is None
    undo(document)
    assert scene.node_item("loop-2") is None


def test_layout_pins(document: EditorDocument) -> None:
    changed: list[list[str]] = []
    document.sig_steps_changed.connect(changed.append)
    document.set_layout_pinned(["total", "announce"], True)
    assert document.find_step("total").layout_pinned
    document.set_layout_pinned(["total"], True)
    assert document.undo_stack.count() == 1
    undo(document)
    assert not document.find_step("announce").layout_pinned
    assert changed == [["total", "announce"], ["announce", "total"]]


# -- notes, groups, macros ------------------------------------------------------------------


def test_notes_do_undo(document: EditorDocument) -> None:
    note_id = document.add_note("remember", (5.0, 6.0))
    document.set_note(note_id, text="changed", position=(7.0, 8.0), size=(300.0, 90.0))
    note = document.workflow.notes[0]
    assert (note.text, note.position.x, note.width, note.height) == ("changed", 7.0, 300.0, 90.0)
    undo(document)
    assert document.workflow.notes[0].text == "remember"
    document.remove_notes([note_id])
    assert document.workflow.notes == []
    undo(document)
    assert document.workflow.notes[0].id == note_id
    with pytest.raises(EditError, match="invalid note size"):
        document.set_note(note_id, size=(0.0, 10.0))
    with pytest.raises(EditError, match="no note with id 'ghost'"):
        document.remove_notes(["ghost"])


def test_groups_do_undo(document: EditorDocument) -> None:
    emitted: list[bool] = []
    document.sig_groups_changed.connect(lambda: emitted.append(True))
    group_id = document.group(["numbers", "total"], "Main")
    assert document.workflow.groups[0].title == "Main"
    document.ungroup(group_id)
    assert document.workflow.groups == []
    undo(document)
    assert document.workflow.groups[0].id == group_id
    assert len(emitted) == 3
    with pytest.raises(EditError, match="no group with id 'ghost'"):
        document.ungroup("ghost")


def test_macro_is_one_undo_step(document: EditorDocument, scene: WorkflowScene) -> None:
    with document.macro("Tidy up"):
        document.move_steps({"total": (1.0, 1.0)})
        document.connect("numbers", "announce")
        document.rename_step("announce", "finish")
    assert document.undo_stack.count() == 1
    assert document.undo_stack.undoText() == "Tidy up"
    undo(document)
    assert document.has_step("announce")
    assert ("numbers", "announce") not in explicit_edges(document)
    assert scene.node_item("announce") is not None


def test_changed_signal_after_edit_undo_redo(document: EditorDocument) -> None:
    count: list[int] = []
    document.sig_changed.connect(lambda: count.append(1))
    document.connect("numbers", "announce")
    undo(document)
    redo(document)
    assert len(count) == 3


# -- document state -------------------------------------------------------------------------


def test_dirty_state_follows_undo_stack(document: EditorDocument) -> None:
    states: list[bool] = []
    document.sig_dirty_changed.connect(states.append)
    assert not document.is_dirty()
    document.move_steps({"total": (1.0, 1.0)})
    assert document.is_dirty()
    undo(document)
    assert not document.is_dirty()
    redo(document)
    document.mark_clean()
    assert not document.is_dirty()
    assert states == [True, False, True, False]


def test_save_round_trip(document: EditorDocument, tmp_path: Path) -> None:
    document.move_steps({"total": (10.0, 20.0)})
    document.group(["total"], "End")
    saved: list[str] = []
    document.sig_saved.connect(saved.append)
    path = tmp_path / "saved.workflow.json"
    assert document.save(path) == path
    assert not document.is_dirty()
    assert document.path == path
    assert saved == [str(path)]
    assert load_workflow(path) == document.workflow
    document.move_steps({"total": (30.0, 20.0)})
    document.save()
    position = load_workflow(path).step("total").position
    assert position is not None
    assert position.x == 30.0


def test_save_without_path_fails(document: EditorDocument) -> None:
    with pytest.raises(EditError, match="no file yet"):
        document.save()


def test_load_resets_history_and_scene(document: EditorDocument, scene: WorkflowScene) -> None:
    document.move_steps({"total": (1.0, 1.0)})
    resets: list[bool] = []
    document.sig_reset.connect(lambda: resets.append(True))
    document.load(workflow_from_data({"schema_version": 1, "steps": [lua_step("only", "return 1")]}))
    assert resets == [True]
    assert document.undo_stack.count() == 0
    assert not document.is_dirty()
    assert sorted(scene.node_items()) == ["only"]
    document.load(Workflow(), dirty=True)
    assert document.is_dirty()


def test_read_only_rejects_edits(document: EditorDocument) -> None:
    document.read_only = True
    with pytest.raises(EditError, match="read-only"):
        document.move_steps({"total": (1.0, 1.0)})
    with pytest.raises(EditError, match="read-only"):
        document.connect("numbers", "announce")
    assert document.undo_stack.count() == 0


def test_snapshot_is_independent(document: EditorDocument) -> None:
    snapshot = document.snapshot()
    document.move_steps({"total": (1.0, 1.0)})
    document.rename_step("numbers", "values")
    assert snapshot.step("total").position is None
    assert snapshot.step("numbers").id == "numbers"


# -- scene consistency ----------------------------------------------------------------------


def drawn_edges(scene: WorkflowScene) -> dict[tuple[str, str], bool]:
    return {key: edge.implied for key, edge in scene.edge_items().items()}


def expected_edges(document: EditorDocument) -> dict[tuple[str, str], bool]:
    return {spec.key: spec.implied for spec in workflow_edges(document.workflow)}


def test_scene_matches_full_rebuild_after_edits(document: EditorDocument, scene: WorkflowScene) -> None:
    generator = random.Random(7)
    for round_index in range(120):
        ids = [step.id for step in document.workflow.iter_steps()]
        target = generator.choice(ids)
        source = generator.choice(ids)
        action = generator.choice(
            ["reference", "reference", "connect", "disconnect", "add", "remove", "rename", "duplicate", "undo", "redo"]
        )
        try:
            if action == "reference" and isinstance(document.find_step(target), ForEachStep):
                document.set_step_field(target, "config.items", f"{{{{steps.{source}.result}}}}")
            elif action == "reference":
                field = "config.prompt" if document.find_step(target).type == "llm_call" else "config.inputs.v"
                document.set_step_field(target, field, f"{{{{steps.{source}.result}}}}")
            elif action == "disconnect" and document.workflow.edges:
                edge = generator.choice(document.workflow.edges)
                document.disconnect(edge.source, edge.target)
            elif action == "duplicate":
                document.duplicate([target])
            elif action == "connect":
                document.connect(source, target)
            elif action == "add":
                document.add_step(new_step("lua_script", document.workflow), (float(round_index), 0.0))
            elif action == "remove" and len(ids) > 3:
                document.remove_steps([target])
            elif action == "rename":
                document.rename_step(target, f"r{round_index}")
            elif action == "undo":
                document.undo_stack.undo()
            elif action == "redo":
                document.undo_stack.redo()
        except EditError:
            continue
        assert drawn_edges(scene) == expected_edges(document), f"round {round_index}: {action} {source} {target}"
        assert sorted(scene.node_items()) == sorted(step.id for step in document.workflow.iter_steps())


# -- speed ----------------------------------------------------------------------------------


def large_workflow(count: int) -> Workflow:
    steps = [
        lua_step(f"s{index}", "return 1", {"v": f"{{{{steps.s{index - 1}.result}}}}"} if index else {},
                 position={"x": float(index % 100) * 260.0, "y": float(index // 100) * 120.0})
        for index in range(count)
    ]
    return workflow_from_data({"schema_version": 1, "steps": steps})


def test_single_move_in_large_workflow_is_fast(qapp: QApplication) -> None:
    document = EditorDocument()
    document.load(large_workflow(5000))
    scene = WorkflowScene()
    scene.set_document(document)
    durations: list[float] = []
    for index in range(200):
        started = time.perf_counter()
        document.move_steps({"s2500": (float(index), 50.0)}, merge=True)
        durations.append(time.perf_counter() - started)
    document.end_move()
    median_ms = statistics.median(durations) * 1000.0
    # The design target is 2 ms; the bound leaves room for a loaded shared CI machine.
    assert median_ms < 6.0, f"median move took {median_ms:.2f} ms"
    assert document.undo_stack.count() == 1
    item = scene.node_item("s2500")
    assert item is not None
    assert item.pos().x() == 199.0


# -- the window -----------------------------------------------------------------------------


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    main_window = MainWindow(store_path=tmp_path / "studio.db")
    qtbot.addWidget(main_window)
    main_window.show()
    return main_window


def answer_next_box(button: QMessageBox.StandardButton) -> None:
    """Click ``button`` on the next modal message box, once it is shown."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(10, click)
            return
        box.button(button).click()

    QTimer.singleShot(0, click)


def test_window_title_marks_unsaved(window: MainWindow, write_workflow: Any) -> None:
    assert window.open_workflow(write_workflow(pipeline_document()))
    assert not window.isWindowModified()
    window.document.move_steps({"total": (1.0, 2.0)})
    assert window.isWindowModified()
    assert window.windowTitle().startswith("Squares pipeline[*]")
    window.editor.action_undo.trigger()
    assert not window.isWindowModified()
    window.editor.action_redo.trigger()
    assert window.editor.save()
    assert not window.isWindowModified()


def test_window_close_cancel_keeps_it(window: MainWindow, write_workflow: Any) -> None:
    assert window.open_workflow(write_workflow(pipeline_document()))
    window.document.move_steps({"total": (1.0, 2.0)})
    answer_next_box(QMessageBox.StandardButton.Cancel)
    assert not window.close()
    assert window.isVisible()
    answer_next_box(QMessageBox.StandardButton.Discard)
    assert window.close()


def test_window_close_save_writes_file(window: MainWindow, write_workflow: Any) -> None:
    path = write_workflow(pipeline_document())
    assert window.open_workflow(path)
    window.document.move_steps({"total": (11.0, 22.0)})
    answer_next_box(QMessageBox.StandardButton.Save)
    assert window.close()
    position = load_workflow(path).step("total").position
    assert position is not None
    assert (position.x, position.y) == (11.0, 22.0)


def test_window_new_save_as_revert(window: MainWindow, tmp_path: Path) -> None:
    assert window.editor.new_document()
    assert window.workflow is not None
    assert window.workflow.steps == []
    window.document.add_step(new_step("lua_script", window.document.workflow), (0.0, 0.0))
    target = tmp_path / "new.workflow.json"
    assert window.editor.save_as(target)
    assert window.workflow_path == target
    window.document.remove_steps(["lua-script"])
    assert window.editor.revert()
    assert window.document.has_step("lua-script")
    assert not window.document.is_dirty()


def test_window_history_and_edit_menu(window: MainWindow, write_workflow: Any) -> None:
    assert window.open_workflow(write_workflow(pipeline_document()))
    window.document.connect("numbers", "announce")
    assert window.editor.history_view.stack() is window.document.undo_stack
    titles = [action.text() for action in window.edit_menu.actions()]
    assert any("Undo" in title for title in titles)
    assert window.editor.action_undo.shortcut() == QKeySequence(QKeySequence.StandardKey.Undo)
    window.editor.action_undo.trigger()
    assert ("numbers", "announce") not in explicit_edges(window.document)
    window.document.mark_clean()


def run_test_to_end(window: MainWindow, qasync_loop: Any) -> str | None:
    """Start a test run of the window's draft, wait for a terminal state and return the run id."""

    async def scenario() -> str | None:
        finished = asyncio.Event()

        def on_state(state: str) -> None:
            if state in ("completed", "failed", "stopped"):
                finished.set()

        window.sig_run_state_changed.connect(on_state)
        try:
            run_id = await window.start_test_run({"count": 2})
            if run_id is not None:
                await asyncio.wait_for(finished.wait(), 60.0)
            return run_id
        finally:
            window.sig_run_state_changed.disconnect(on_state)
            await window.aclose()

    result: str | None = qasync_loop.run_until_complete(scenario())
    return result


def test_test_run_uses_draft_and_keeps_history(window: MainWindow, write_workflow: Any, qasync_loop: Any) -> None:
    assert window.open_workflow(write_workflow(pipeline_document()))
    window.document.rename_step("announce", "finish")
    window.document.move_steps({"total": (300.0, 0.0)})
    assert window.document.is_dirty()

    assert run_test_to_end(window, qasync_loop) is not None, window.last_error
    assert window.run_state == "completed"
    finish = window.scene.node_item("finish")
    assert finish is not None
    assert finish.status == "completed"
    assert window.document.undo_stack.count() == 2
    assert window.document.is_dirty()
    window.document.mark_clean()


def test_test_run_of_saved_document_keeps_history(
    window: MainWindow, write_workflow: Any, qasync_loop: Any
) -> None:
    assert window.open_workflow(write_workflow(pipeline_document()))
    window.document.move_steps({"total": (300.0, 0.0)})
    assert window.editor.save()

    assert run_test_to_end(window, qasync_loop) is not None, window.last_error
    assert window.run_state == "completed"
    assert window.document.undo_stack.count() == 1
    assert window.document.undo_stack.canUndo()
