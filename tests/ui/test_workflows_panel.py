"""The Workflows and Versions docks, publishing, the visual diff and the run setup dialog in a real window."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget

from studio.app.input_dialog import RunInputDialog, required_inputs_missing, saved_run_inputs
from studio.app.main_window import MainWindow
from studio.canvas.document import EditorDocument
from studio.model.document import workflow_from_data
from studio.model.edits import EditError
from studio.model.workflow import LuaScriptStep, Workflow
from studio.panels.workflows import WorkflowLibrary
from studio.store import workflow_library as library

TERMINAL = ("completed", "failed", "stopped")


def lua(step_id: str, source: str = "return 1", x: float = 0.0) -> dict[str, Any]:
    return {"id": step_id, "type": "lua_script", "config": {"source": source}, "position": {"x": x, "y": 0}}


def make_workflow(name: str, steps: list[dict[str, Any]], **extra: Any) -> Workflow:
    return workflow_from_data({"schema_version": 1, "name": name, "steps": steps, **extra}, "test")


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> Iterator[MainWindow]:
    main_window = MainWindow(store_path=tmp_path / "studio.db", recovery_dir=tmp_path / "recovery")
    qtbot.addWidget(main_window)
    main_window.show()
    yield main_window
    # Closing a window with unsaved changes opens a modal Save/Discard/Cancel box that blocks the test.
    if shiboken6.isValid(main_window.document):
        main_window.document.mark_clean()


@pytest.fixture
def installed(window: MainWindow) -> WorkflowLibrary:
    return window.features.library


def rows(installed: WorkflowLibrary) -> list[list[str]]:
    tree = installed.panel.tree
    items = [tree.topLevelItem(index) for index in range(tree.topLevelItemCount())]
    return [[item.text(column) for column in range(4)] for item in items if item is not None]


def test_install_adds_docks_and_menu(window: MainWindow, installed: WorkflowLibrary) -> None:
    docks = {dock.objectName() for dock in window.findChildren(QDockWidget)}
    menus = [action.text() for action in window.menuBar().actions()]

    assert {"workflows-dock", "versions-dock"} <= docks
    assert "&Workflow" in menus
    assert window.workflow_library is installed
    assert installed.action_publish.shortcut().toString() == "Ctrl+Alt+P"


def test_list_open_and_new(window: MainWindow, installed: WorkflowLibrary) -> None:
    stored = make_workflow("Stored", [lua("a")])
    library.save_draft(window.store, stored)
    installed.panel.refresh()

    assert rows(installed)[0][0] == "Stored"
    assert rows(installed)[0][3] == "new, not published"
    assert installed.open_workflow(stored.id)
    assert window.document.workflow == stored
    assert window.document.read_only is False

    created = installed.new_workflow("Fresh")

    assert created is not None
    assert window.document.workflow_id == created.id
    assert [row[0] for row in rows(installed)] == ["Fresh", "Stored"]
    assert installed.panel.selected_id() == created.id


def test_switching_keeps_unsaved_edits(window: MainWindow, installed: WorkflowLibrary) -> None:
    first = installed.new_workflow("First")
    assert first is not None
    window.document.add_step(LuaScriptStep(id="added", config={"source": "return 2"}), (10.0, 20.0))
    assert window.document.is_dirty()

    installed.new_workflow("Second")

    draft = window.store.get_draft(first.id)
    assert draft is not None
    assert [step.id for step in draft.steps] == ["added"]


def test_save_draft_marks_clean(window: MainWindow, installed: WorkflowLibrary) -> None:
    created = installed.new_workflow("Draft")
    assert created is not None
    window.document.add_step(LuaScriptStep(id="s", config={"source": "return 2"}), (0.0, 0.0))

    assert installed.save_draft()

    assert not window.document.is_dirty()
    assert [revision.revision for revision in library.list_draft_revisions(window.store, created.id)] == [2, 1]


def test_publish_blocked_by_errors(window: MainWindow, installed: WorkflowLibrary, qtbot: Any) -> None:
    broken = make_workflow("Broken", [lua("a", source="")])
    library.save_draft(window.store, broken)
    installed.open_workflow(broken.id)

    dialog = installed.ask_publish()

    assert dialog is not None
    assert not dialog.publish_button.isEnabled()
    assert "Publishing is blocked" in dialog.problems_label.text()
    assert "step 'a'" in dialog.problems_label.text()
    dialog.reject()


def test_publish_with_note(window: MainWindow, installed: WorkflowLibrary, qtbot: Any) -> None:
    workflow = make_workflow("Good", [lua("a")])
    library.save_draft(window.store, workflow)
    installed.open_workflow(workflow.id)
    dialog = installed.ask_publish()
    assert dialog is not None

    dialog.accept()
    assert dialog.isVisible()
    assert "Enter a note" in dialog.problems_label.text()
    dialog.note_edit.setPlainText("first release")
    with qtbot.waitSignal(installed.sig_published) as published:
        dialog.accept()

    assert published.args == [workflow.id, 1]
    assert window.store.list_versions(workflow.id)[0].note == "first release"
    assert installed.versions.keys() == [0, 1]
    assert rows(installed)[0][2:] == ["v1", "published"]


def publish_two_versions(window: MainWindow) -> Workflow:
    first = make_workflow("Versioned", [lua("a", x=0), lua("b", x=200)])
    library.publish(window.store, first, "v1")
    second = first.model_copy(
        update={"steps": [first.steps[0], make_workflow("x", [lua("b", "return 'changed'", x=200)]).steps[0]]}
    )
    library.publish(window.store, second, "v2")
    return second


def test_open_version_read_only(window: MainWindow, installed: WorkflowLibrary) -> None:
    latest = publish_two_versions(window)
    installed.open_workflow(latest.id)

    assert installed.open_version(1)

    assert window.document.read_only is True
    assert installed.shown_version == 1
    assert not installed.action_publish.isEnabled()
    canvas_actions = window.features.canvas_editing.actions
    assert not canvas_actions["delete"].isEnabled()
    assert not canvas_actions["paste"].isEnabled()
    assert canvas_actions["copy"].isEnabled()
    assert canvas_actions["zoom_fit"].isEnabled()
    with pytest.raises(EditError):
        window.document.add_step(LuaScriptStep(id="nope", config={"source": "return 1"}), (0.0, 0.0))
    assert installed.open_workflow(latest.id)
    assert window.document.read_only is False
    assert installed.action_publish.isEnabled()
    assert canvas_actions["delete"].isEnabled()


def test_restore_version_as_draft(window: MainWindow, installed: WorkflowLibrary) -> None:
    latest = publish_two_versions(window)
    installed.open_workflow(latest.id)
    window.document.add_step(LuaScriptStep(id="unsaved", config={"source": "return 9"}), (0.0, 300.0))

    assert installed.restore_version(1)

    draft = window.store.get_draft(latest.id)
    assert draft is not None
    assert window.document.workflow == draft
    assert "unsaved" not in [step.id for step in draft.steps]
    kept = [revision.workflow for revision in library.list_draft_revisions(window.store, latest.id)]
    assert any("unsaved" in [step.id for step in workflow.steps] for workflow in kept)


def test_versions_compare_opens_diff(window: MainWindow, installed: WorkflowLibrary) -> None:
    latest = publish_two_versions(window)
    installed.open_workflow(latest.id)
    installed.versions.select_keys([1, 2])

    assert installed.versions.comparison() == (1, 2)
    installed.versions.compare_button.click()
    dialog = installed.diff_dialog

    assert dialog is not None
    assert dialog.old_canvas.markers == {"b": "changed"}
    assert dialog.new_canvas.markers == {"b": "changed"}
    assert ("b", "changed", "config.source", '"return 1"', "\"return 'changed'\"") in dialog.table_rows()
    dialog.reject()


def test_compare_version_with_draft(window: MainWindow, installed: WorkflowLibrary) -> None:
    latest = publish_two_versions(window)
    extended = latest.model_copy(update={"steps": [*latest.steps, make_workflow("x", [lua("c")]).steps[0]]})
    library.save_draft(window.store, extended)
    installed.open_workflow(latest.id)
    installed.versions.select_keys([2])

    assert installed.versions.comparison() == (2, 0)
    dialog = installed.compare(2, 0)

    assert dialog is not None
    assert dialog.new_canvas.markers == {"c": "added"}
    assert dialog.old_canvas.markers == {}
    dialog.reject()


def test_rename_and_archive(window: MainWindow, installed: WorkflowLibrary) -> None:
    created = installed.new_workflow("Before")
    assert created is not None

    assert installed.rename(created.id, "After")
    assert window.document.workflow.name == "After"
    assert rows(installed)[0][0] == "After"
    assert installed.rename(created.id, "   ") is False
    assert "workflow name '   ' is invalid" in window.last_error

    installed.panel.select(created.id)
    installed.panel.archive_button.click()
    assert rows(installed) == []
    installed.panel.show_archived.setChecked(True)
    assert rows(installed)[0][3].endswith("(archived)")


def test_project_switch_lists_its_workflows(window: MainWindow, installed: WorkflowLibrary) -> None:
    project = library.create_project(window.store, "Side project")
    library.create_workflow(window.store, "Side flow", project.id)
    library.create_workflow(window.store, "Main flow")
    installed.panel.refresh_projects()

    installed.panel.project_combo.setCurrentIndex(installed.panel.project_combo.findData(project.id))

    assert [row[0] for row in rows(installed)] == ["Side flow"]


def inputs_workflow() -> Workflow:
    schema = {
        "type": "object",
        "properties": {
            "count": {"type": "integer", "minimum": 1, "default": 2},
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "verbose": {"type": "boolean"},
            "topic": {"type": "string", "description": "what to write about"},
        },
        "required": ["topic", "mode"],
    }
    return make_workflow("Inputs", [lua("a")], input_schema=schema)


def test_run_setup_checks_schema(window: MainWindow, qtbot: Any) -> None:
    dialog = RunInputDialog(inputs_workflow(), window)
    qtbot.addWidget(dialog)

    assert dialog.fields["count"].text() == "2"
    assert set(dialog.choices) == {"mode", "verbose"}
    dialog.fields["topic"].setText("birds")
    dialog.fields["count"].setText("0")
    dialog.accept()

    assert dialog.result() == 0
    assert "input 'count': 0 is less than the minimum of 1" in dialog.error_label.text()


def test_run_setup_remembers_values(window: MainWindow, qtbot: Any) -> None:
    workflow = inputs_workflow()
    first = RunInputDialog(workflow, window)
    qtbot.addWidget(first)
    first.fields["topic"].setText("birds")
    first.fields["count"].setText("5")
    first.choices["mode"].setCurrentIndex(1)
    first.choices["verbose"].setCurrentText("true")
    first.accept()

    second = RunInputDialog(workflow, window)
    qtbot.addWidget(second)

    assert first.values() == {"topic": "birds", "count": 5, "mode": "slow", "verbose": True}
    assert library.get_run_defaults(window.store, workflow.id) == first.values()
    assert second.fields["topic"].text() == "birds"
    assert second.fields["count"].text() == "5"
    assert second.choices["mode"].currentText() == "slow"
    second.reset_to_schema_defaults()
    assert second.fields["count"].text() == "2"
    assert second.fields["topic"].text() == ""


def test_run_setup_without_remember(window: MainWindow, qtbot: Any) -> None:
    workflow = inputs_workflow()
    dialog = RunInputDialog(workflow, window)
    qtbot.addWidget(dialog)
    dialog.fields["topic"].setText("cats")
    dialog.remember.setChecked(False)
    dialog.accept()

    assert dialog.result() == 1
    assert library.get_run_defaults(window.store, workflow.id) == {}


def test_read_only_flag_follows_loads(qtbot: Any, window: MainWindow, installed: WorkflowLibrary) -> None:
    latest = publish_two_versions(window)
    installed.open_workflow(latest.id)
    installed.open_version(2)
    assert isinstance(window.document, EditorDocument)

    window.document.load(make_workflow("Other", [lua("z")]))

    assert window.document.read_only is False
    assert installed.shown_version is None
    assert installed.versions.workflow_id == window.document.workflow_id
    assert Qt.DockWidgetArea.LeftDockWidgetArea == window.dockWidgetArea(installed.dock)


def test_saved_inputs_for_runs_without_dialog(window: MainWindow) -> None:
    workflow = inputs_workflow()
    library.save_run_defaults(window.store, workflow, {"topic": "owls", "mode": "fast", "gone": 1})

    saved = saved_run_inputs(window.store, workflow)

    assert saved == {"topic": "owls", "mode": "fast"}
    assert required_inputs_missing(workflow, saved) == []
    assert required_inputs_missing(workflow) == ["topic", "mode"]
    library.save_run_defaults(window.store, workflow, {"topic": "owls", "mode": "medium"})
    assert saved_run_inputs(window.store, workflow) == {}
    assert saved_run_inputs(None, workflow) == {}


def test_run_refreshes_versions(window: MainWindow, installed: WorkflowLibrary, qasync_loop: Any, qtbot: Any) -> None:
    workflow = make_workflow("Runnable", [lua("a")])
    library.save_draft(window.store, workflow)
    installed.open_workflow(workflow.id)
    assert installed.versions.keys() == [0]

    async def run_to_end() -> str | None:
        finished = asyncio.Event()
        window.sig_run_state_changed.connect(lambda state: finished.set() if state in TERMINAL else None)
        run_id = await window.start_run()
        await asyncio.wait_for(finished.wait(), 60)
        return run_id

    run_id = qasync_loop.run_until_complete(run_to_end())

    assert run_id is not None
    assert window.run_state == "completed"
    assert installed.versions.keys() == [0, 1]
    assert rows(installed)[0][2] == "v1"


def test_draft_history_restores_revision(window: MainWindow, installed: WorkflowLibrary) -> None:
    created = installed.new_workflow("History")
    assert created is not None
    window.document.add_step(LuaScriptStep(id="later", config={"source": "return 2"}), (0.0, 0.0))
    installed.save_draft()

    dialog = installed.show_draft_history()
    assert dialog is not None
    assert dialog.revisions() == [2, 1]
    assert not dialog.restore_button.isEnabled()
    dialog.select_revision(1)
    dialog.restore_button.click()

    assert window.document.workflow.steps == []
    assert window.document.workflow_id == created.id
    assert [item.revision for item in library.list_draft_revisions(window.store, created.id)] == [3, 2, 1]
