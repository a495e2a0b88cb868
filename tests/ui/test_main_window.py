"""Main window tests: opening files, errors, the input form and real runs through the engine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import qasync

from studio.app.input_dialog import RunInputDialog, parse_input_text, required_inputs_missing
from studio.app.main_window import MainWindow
from studio.model.document import workflow_from_data
from studio.model.validation import VALIDATION_REVISION
from studio.store import open_store

TERMINAL = ("completed", "failed", "stopped")
RUN_TIMEOUT_S = 60.0


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    main_window = MainWindow(store_path=tmp_path / "studio.db")
    qtbot.addWidget(main_window)
    main_window.show()
    return main_window


async def run_to_end(window: MainWindow, inputs: dict[str, Any] | None = None) -> str | None:
    """Start a run from the window, wait for a terminal run state and return the run id."""
    finished = asyncio.Event()

    def on_state(state: str) -> None:
        if state in TERMINAL:
            finished.set()

    window.sig_run_state_changed.connect(on_state)
    try:
        run_id = await window.start_run(inputs)
        if run_id is not None:
            await asyncio.wait_for(finished.wait(), RUN_TIMEOUT_S)
        return run_id
    finally:
        window.sig_run_state_changed.disconnect(on_state)


def test_open_workflow_shows_nodes_and_title(window: MainWindow, write_workflow: Any, pipeline: dict) -> None:
    assert window.open_workflow(write_workflow(pipeline))
    assert sorted(window.scene.node_items()) == ["announce", "label", "loop", "numbers", "square", "total"]
    assert window.windowTitle().startswith("Squares pipeline")
    assert window.action_run.isEnabled()
    assert not window.action_stop.isEnabled()


def test_bad_file_shows_error_and_keeps_workflow(
    window: MainWindow, write_workflow: Any, pipeline: dict, qtbot: Any
) -> None:
    good = write_workflow(pipeline)
    assert window.open_workflow(good)
    bad = write_workflow('{"schema_version": 1, "steps": [{"id": "x", "type": "teleport"}]}', name="bad.json")
    with qtbot.waitSignal(window.sig_error_shown) as blocker:
        assert not window.open_workflow(bad)
    message = blocker.args[0]
    assert "bad.json" in message
    assert "teleport" in message
    assert window.workflow is not None and window.workflow.name == "Squares pipeline"
    assert window.workflow_path == good
    assert "node" not in window.scene.node_items()
    assert "numbers" in window.scene.node_items()
    box = window.error_box()
    assert box is not None and box.isVisible()
    assert "bad.json" in window.statusBar().currentMessage()


def test_missing_file_shows_error(window: MainWindow, tmp_path: Path) -> None:
    assert not window.open_workflow(tmp_path / "absent.workflow.json")
    assert "file not found" in window.last_error
    assert window.workflow is None


def test_malformed_json_names_line(window: MainWindow, write_workflow: Any) -> None:
    assert not window.open_workflow(write_workflow('{"schema_version": 1,\n "steps": [', name="broken.json"))
    assert "line 2" in window.last_error


def test_required_inputs_without_defaults_are_listed() -> None:
    workflow = workflow_from_data({
        "schema_version": 1,
        "input_schema": {
            "type": "object",
            "properties": {"topic": {"type": "string"}, "limit": {"type": "integer", "default": 5}},
            "required": ["topic", "limit"],
        },
    })
    assert required_inputs_missing(workflow) == ["topic"]


@pytest.mark.parametrize(
    ("text", "schema_type", "expected"),
    [
        ("hello", None, "hello"),
        ("42", None, 42),
        ("42", "string", "42"),
        ("[1, 2]", None, [1, 2]),
        ('{"a": true}', None, {"a": True}),
        ("null", None, None),
        ('"quoted"', None, "quoted"),
        ("3 apples", None, "3 apples"),
    ],
)
def test_parse_input_text(text: str, schema_type: Any, expected: Any) -> None:
    assert parse_input_text(text, schema_type) == expected


def test_parse_input_text_rejects_broken_json() -> None:
    with pytest.raises(ValueError, match=r"looks like JSON but is invalid"):
        parse_input_text("[1, 2")


def test_input_dialog_requires_missing_values(qtbot: Any) -> None:
    workflow = workflow_from_data({
        "schema_version": 1,
        "input_schema": {
            "type": "object",
            "properties": {"topic": {"type": "string"}, "ids": {"type": "array", "default": [1]}},
            "required": ["topic"],
        },
    })
    dialog = RunInputDialog(workflow)
    qtbot.addWidget(dialog)
    assert dialog.fields["ids"].text() == "[1]"
    dialog.accept()
    assert dialog.result() == 0
    assert "'topic' is required" in dialog.error_label.text()
    dialog.fields["topic"].setText("42")
    dialog.fields["ids"].setText("[3, 4]")
    dialog.accept()
    assert dialog.result() == 1
    assert dialog.values() == {"topic": "42", "ids": [3, 4]}


def test_real_run_completes_every_node(
    window: MainWindow, write_workflow: Any, pipeline: dict, qasync_loop: qasync.QEventLoop, tmp_path: Path
) -> None:
    assert window.open_workflow(write_workflow(pipeline))

    async def scenario() -> str | None:
        try:
            return await run_to_end(window, {"count": 3})
        finally:
            await window.aclose()

    run_id = qasync_loop.run_until_complete(scenario())
    assert run_id is not None, window.last_error
    assert window.run_state == "completed"
    for step_id, item in window.scene.node_items().items():
        assert item.status == "completed", (step_id, item.status, item.detail)
    loop = window.scene.node_item("loop")
    assert loop is not None and loop.detail.startswith("3/3 done")
    square = window.scene.node_item("square")
    assert square is not None and square.detail == "3/3 items"

    rows = window.event_log.model.rows()
    types = [row.type for row in rows]
    assert types[0] == "run_created"
    assert types[-1] == "run_completed"
    assert [row.seq for row in rows] == sorted(row.seq for row in rows)
    completed_keys = {row.step_key for row in rows if row.type == "step_completed"}
    assert completed_keys >= {"loop[0].square", "loop[2].label", "total"}
    assert window.run_status_label.text() == "Run completed"
    assert window.elapsed_label.text().endswith("s")
    assert window.action_run.isEnabled()
    # The window validated the workflow before publishing it, so its version carries the mark.
    store = open_store(tmp_path / "studio.db")
    try:
        assert store.get_version(store.get_run(run_id).version_id).validated_by == VALIDATION_REVISION
    finally:
        store.close()


def test_real_run_failure_marks_failed_node(
    window: MainWindow, write_workflow: Any, pipeline: dict, qasync_loop: qasync.QEventLoop
) -> None:
    pipeline["steps"][2]["config"]["source"] = "error('total exploded')"
    assert window.open_workflow(write_workflow(pipeline))

    async def scenario() -> str | None:
        try:
            return await run_to_end(window)
        finally:
            await window.aclose()

    assert qasync_loop.run_until_complete(scenario()) is not None
    assert window.run_state == "failed"
    total = window.scene.node_item("total")
    announce = window.scene.node_item("announce")
    assert total is not None and announce is not None
    assert total.status == "failed"
    assert "total exploded" in total.detail
    assert announce.status in ("pending", "skipped")
    assert window.run_status_label.text().startswith("Run failed")


def test_invalid_inputs_show_error(
    window: MainWindow, write_workflow: Any, pipeline: dict, qasync_loop: qasync.QEventLoop
) -> None:
    assert window.open_workflow(write_workflow(pipeline))

    async def scenario() -> str | None:
        try:
            return await window.start_run({"count": "many"})
        finally:
            await window.aclose()

    assert qasync_loop.run_until_complete(scenario()) is None
    assert "count" in window.last_error
    assert window.run_state == "failed"
    assert window.action_run.isEnabled()


def test_stop_ends_a_running_run(
    window: MainWindow, write_workflow: Any, qasync_loop: qasync.QEventLoop
) -> None:
    document = {
        "schema_version": 1,
        "name": "Slow",
        "steps": [{
            "id": "spin",
            "type": "lua_script",
            "config": {"source": "local n = 0 while true do n = n + 1 end", "timeout_s": 60},
        }],
    }
    assert window.open_workflow(write_workflow(document))

    async def scenario() -> None:
        running = asyncio.Event()
        stopped = asyncio.Event()

        def on_state(state: str) -> None:
            if state == "running":
                running.set()
            if state == "stopped":
                stopped.set()

        window.sig_run_state_changed.connect(on_state)
        try:
            assert await window.start_run() is not None
            await asyncio.wait_for(running.wait(), RUN_TIMEOUT_S)
            assert window.action_stop.isEnabled()
            await window.stop_run()
            await asyncio.wait_for(stopped.wait(), RUN_TIMEOUT_S)
        finally:
            window.sig_run_state_changed.disconnect(on_state)
            await window.aclose()

    qasync_loop.run_until_complete(scenario())
    assert window.run_state == "stopped"
    assert not window.action_stop.isEnabled()
    assert window.action_run.isEnabled()
