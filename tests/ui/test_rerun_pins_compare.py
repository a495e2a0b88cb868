"""Window tests for re-running from a step, pinned step outputs and the run comparison view, with real runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import Qt

from studio.app.main_window import MainWindow
from studio.canvas.node_item import PIN_TOOLTIP
from tests.ui.conftest import lua_step

TERMINAL = ("completed", "failed", "stopped")
RUN_TIMEOUT_S = 60.0


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> MainWindow:
    main_window = MainWindow(store_path=tmp_path / "studio.db")
    qtbot.addWidget(main_window)
    main_window.show()
    return main_window


def chain_document(name: str = "Chain") -> dict[str, Any]:
    """Three lua_script steps a -> b -> c, where a depends on the input ``n``."""
    return {
        "schema_version": 1,
        "name": name,
        "input_schema": {"type": "object", "properties": {"n": {"type": "integer", "default": 2}}},
        "steps": [
            lua_step("a", "return {n = n, list = {n, n + 1}}", {"n": "{{input.n}}"}),
            lua_step("b", "return v * 10", {"v": "{{steps.a.result.n}}"}),
            lua_step("c", "return 'b=' .. w", {"w": "{{steps.b.result}}"}),
        ],
    }


async def shown_run_to_end(window: MainWindow, start: Awaitable[str | None]) -> str | None:
    """Await ``start`` (which shows a new run) and wait until the window shows that run as ended."""
    finished = asyncio.Event()

    def on_state(state: str) -> None:
        if state in TERMINAL:
            finished.set()

    window.sig_run_state_changed.connect(on_state)
    try:
        run_id = await start
        if run_id is not None and window.run_state not in TERMINAL:
            await asyncio.wait_for(finished.wait(), RUN_TIMEOUT_S)
        return run_id
    finally:
        window.sig_run_state_changed.disconnect(on_state)


def step_completed_data(window: MainWindow, run_id: str, step_key: str) -> dict[str, Any]:
    rows = [row for row in window.store.events(run_id) if row["type"] == "step_completed" and row["step_key"] == step_key]
    assert len(rows) == 1, rows
    return dict(rows[0]["data"])


def test_rerun_from_step_reuses_upstream(
    window: MainWindow, write_workflow: Any, qasync_loop: qasync.QEventLoop
) -> None:
    assert window.open_workflow(write_workflow(chain_document()))

    async def scenario() -> tuple[str | None, str | None]:
        try:
            first = await shown_run_to_end(window, window.start_run({"n": 4}))
            assert first is not None, window.last_error
            window.show_step_details("b")
            assert window.step_details.rerun_button.isEnabled()
            second = await shown_run_to_end(window, window.rerun_from_step(first, "b"))
            return first, second
        finally:
            await window.aclose()

    first, second = qasync_loop.run_until_complete(scenario())
    assert second is not None, window.last_error
    assert second != first
    assert window.store.get_run(second).parent_run_id == first
    rows = window.store.step_runs(second)
    assert rows["a"].reused_from == first
    assert rows["b"].reused_from is None
    assert rows["c"].reused_from is None
    assert rows["c"].result == "b=40"
    assert window.shown_run_id == second
    assert window.run_state == "completed"
    for step_id in ("a", "b", "c"):
        item = window.scene.node_item(step_id)
        assert item is not None
        assert item.status == "completed", (step_id, item.status)
    reused = window.scene.node_item("a")
    assert reused is not None
    assert reused.detail == f"reused from {first[:8]}"
    assert {"a", "b", "c"} <= set(window.timeline.model.lanes)
    assert {"b", "c"} <= set(window.timeline.model.segments)
    assert window.runs_panel.selected_run_ids() == [second]


def test_rerun_from_unknown_step_shows_error(
    window: MainWindow, write_workflow: Any, qasync_loop: qasync.QEventLoop
) -> None:
    assert window.open_workflow(write_workflow(chain_document()))

    async def scenario() -> tuple[str | None, str | None]:
        try:
            first = await shown_run_to_end(window, window.start_run())
            assert first is not None, window.last_error
            return first, await window.rerun_from_step(first, "nope")
        finally:
            await window.aclose()

    first, second = qasync_loop.run_until_complete(scenario())
    assert second is None
    assert "nope" in window.last_error
    assert window.shown_run_id == first


def test_rerun_dialog_lists_steps(window: MainWindow, write_workflow: Any, qasync_loop: qasync.QEventLoop) -> None:
    assert window.open_workflow(write_workflow(chain_document()))

    async def scenario() -> str | None:
        try:
            first = await shown_run_to_end(window, window.start_run())
            assert first is not None, window.last_error
            dialog = window.ask_rerun_step(first)
            assert dialog is not None
            assert dialog.comboBoxItems() == ["a", "b", "c"]
            finished = asyncio.Event()
            window.sig_run_shown.connect(lambda _run_id: finished.set())
            dialog.setTextValue("c")
            dialog.accept()
            await asyncio.wait_for(finished.wait(), RUN_TIMEOUT_S)
            second = window.shown_run_id
            assert second is not None and second != first
            await asyncio.wait_for(window.engine.wait(second), RUN_TIMEOUT_S)
            return second
        finally:
            await window.aclose()

    second = qasync_loop.run_until_complete(scenario())
    assert second is not None, window.last_error
    rows = window.store.step_runs(second)
    assert rows["b"].reused_from is not None
    assert rows["c"].reused_from is None


def test_pinned_output_used_by_test_run(
    window: MainWindow, write_workflow: Any, qasync_loop: qasync.QEventLoop
) -> None:
    assert window.open_workflow(write_workflow(chain_document()))

    async def scenario() -> tuple[str | None, str | None, str | None]:
        try:
            first = await shown_run_to_end(window, window.start_run({"n": 7}))
            assert first is not None, window.last_error
            window.show_step_details("a")
            assert window.step_details.pin_button.isEnabled()
            assert not window.step_details.unpin_button.isEnabled()
            window.step_details.pin_button.click()
            test_run = await shown_run_to_end(window, window.start_test_run({"n": 1}))
            normal_run = await shown_run_to_end(window, window.start_run({"n": 1}))
            return first, test_run, normal_run
        finally:
            await window.aclose()

    _first, test_run, normal_run = qasync_loop.run_until_complete(scenario())
    assert test_run is not None, window.last_error
    assert normal_run is not None, window.last_error
    assert step_completed_data(window, test_run, "a").get("pinned") is True
    assert window.store.step_runs(test_run)["b"].result == 70
    assert window.store.get_run(test_run).is_test
    # Runs of published versions never use pins.
    assert not step_completed_data(window, normal_run, "a").get("pinned")
    assert window.store.step_runs(normal_run)["b"].result == 10
    item = window.scene.node_item("a")
    assert item is not None
    assert item.pinned
    assert PIN_TOOLTIP in item.toolTip()
    assert item.detail != "pinned output"
    assert window.scene.pinned_steps() == {"a"}


def test_unpin_removes_marker(window: MainWindow, write_workflow: Any, qasync_loop: qasync.QEventLoop) -> None:
    assert window.open_workflow(write_workflow(chain_document()))

    async def scenario() -> str | None:
        try:
            return await shown_run_to_end(window, window.start_run())
        finally:
            await window.aclose()

    run_id = qasync_loop.run_until_complete(scenario())
    assert run_id is not None, window.last_error
    assert window.pin_step_output(run_id, "b")
    window.show_step_details("b")
    assert window.step_details.unpin_button.isEnabled()
    window.step_details.unpin_button.click()
    assert window.scene.pinned_steps() == set()
    item = window.scene.node_item("b")
    assert item is not None
    assert PIN_TOOLTIP not in item.toolTip()
    assert window.store.pins(window.store.get_run(run_id).workflow_id) == {}
    assert not window.pin_step_output(run_id, "missing")
    assert "missing" in window.last_error


def test_compare_view_rows_and_diff(
    window: MainWindow, write_workflow: Any, qasync_loop: qasync.QEventLoop
) -> None:
    assert window.open_workflow(write_workflow(chain_document()))

    async def scenario() -> tuple[str | None, str | None]:
        try:
            run_a = await shown_run_to_end(window, window.start_run({"n": 2}))
            run_b = await shown_run_to_end(window, window.start_run({"n": 3}))
            return run_a, run_b
        finally:
            await window.aclose()

    run_a, run_b = qasync_loop.run_until_complete(scenario())
    assert run_a is not None and run_b is not None, window.last_error
    panel = window.runs_panel
    assert not panel.compare_button.isEnabled()
    panel.select_runs([run_a, run_b])
    assert panel.compare_button.isEnabled()
    menu = panel.context_menu()
    enabled = {action.text(): action.isEnabled() for action in menu.actions()}
    assert enabled == {"Re-run from a step…": False, "Compare": True}
    panel.compare_button.click()

    dialog = window.compare_dialog
    assert dialog is not None
    assert dialog.comparison.run_a == run_a
    assert dialog.comparison.run_b == run_b
    cells = dialog.step_cells()
    assert [row[0] for row in cells] == ["a", "b", "c"]
    assert [row[1:3] for row in cells] == [["completed", "completed"]] * 3
    assert [row[5] for row in cells] == ["differs"] * 3
    assert all(row[3].endswith("s") and row[4].endswith("s") for row in cells)

    assert dialog.select_step("a")
    assert sorted(dialog.diff_cells()) == [
        ["$.list[0]", "changed", "2", "3"],
        ["$.list[1]", "changed", "3", "4"],
        ["$.n", "changed", "2", "3"],
    ]
    assert dialog.diff_label.text() == "Output of a: 3 differences"
    assert dialog.select_step("c")
    assert dialog.diff_cells() == [["$", "changed", '"b=20"', '"b=30"']]


def test_compare_other_workflow_shows_error(
    window: MainWindow, write_workflow: Any, qasync_loop: qasync.QEventLoop
) -> None:
    async def scenario() -> tuple[str | None, str | None]:
        try:
            assert window.open_workflow(write_workflow(chain_document("First"), "first.workflow.json"))
            run_a = await shown_run_to_end(window, window.start_run())
            assert window.open_workflow(write_workflow(chain_document("Second"), "second.workflow.json"))
            run_b = await shown_run_to_end(window, window.start_run())
            return run_a, run_b
        finally:
            await window.aclose()

    run_a, run_b = qasync_loop.run_until_complete(scenario())
    assert run_a is not None and run_b is not None, window.last_error
    assert window.show_comparison(run_a, run_b) is None
    assert "different workflows" in window.last_error
    assert window.compare_dialog is None


def test_runs_panel_context_menu_single_run(qtbot: Any) -> None:
    from studio.panels.runs.panel import RunsPanel

    panel = RunsPanel()
    qtbot.addWidget(panel)
    menu = panel.context_menu()
    assert {action.text(): action.isEnabled() for action in menu.actions()} == {
        "Re-run from a step…": False,
        "Compare": False,
    }
    assert not panel.request_compare()
    assert panel.table.contextMenuPolicy() == Qt.ContextMenuPolicy.CustomContextMenu


def test_compare_model_formats_missing_and_long() -> None:
    from studio.engine.compare import JsonChange, RunComparison, StepComparison
    from studio.panels.compare.model import MAX_VALUE_CHARS, diff_rows, step_rows, summary_text, value_text

    added = JsonChange("$.extra", "added", None, "x" * 1000)
    step = StepComparison("late", None, "completed", None, 0.5, False, [added])
    comparison = RunComparison("a" * 32, "b" * 32, "wf", "failed", "completed", [step])
    [row] = step_rows(comparison)
    assert row.cells == ("late", "did not run", "completed", "", "0.50 s", "differs")
    assert row.differs
    [(path, change, value_a, value_b)] = diff_rows(step)
    assert (path, change, value_a) == ("$.extra", "added", "")
    assert len(value_b) == MAX_VALUE_CHARS
    assert value_b.endswith("…")
    assert value_text({"k": [1, None]}) == '{"k":[1,null]}'
    assert summary_text(comparison) == "A: run aaaaaaaa (failed)  ·  B: run bbbbbbbb (completed)  ·  1 of 1 steps differ"


def test_rerun_button_follows_run_end(
    window: MainWindow, write_workflow: Any, qasync_loop: qasync.QEventLoop
) -> None:
    assert window.open_workflow(write_workflow(chain_document()))

    async def start_and_show_details() -> str | None:
        run_id = await window.start_run()
        window.show_step_details("b")
        return run_id

    async def scenario() -> str | None:
        try:
            return await shown_run_to_end(window, start_and_show_details())
        finally:
            await window.aclose()

    run_id = qasync_loop.run_until_complete(scenario())
    assert run_id is not None, window.last_error
    assert window.run_state == "completed"
    details = window.step_details.details
    assert details is not None
    assert details.step_key == "b"
    assert window.step_details.rerun_button.isEnabled()
    assert window.step_details.pin_button.isEnabled()
