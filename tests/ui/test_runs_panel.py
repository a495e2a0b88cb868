"""Runs panel tests: runs rebuilt from the store, live updates, filters and the run buttons on real runs."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QDate
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from studio.app.main_window import MainWindow
from studio.engine import Engine, EventType
from studio.model.workflow import Workflow
from studio.panels.runs.model import RunFilter, RunRow, day_bounds
from studio.store import open_store
from tests.conftest import build_workflow, lua_step, mcp_step
from tests.ui.conftest import pipeline_document

TERMINAL = ("completed", "failed", "stopped")
RUN_TIMEOUT_S = 60.0


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "studio.db"


@pytest.fixture
def windows(qtbot: QtBot, database: Path, qasync_loop: qasync.QEventLoop) -> Iterator[list[MainWindow]]:
    """Windows on ``database``, made with :func:`open_window`; each is closed after the test."""
    opened: list[MainWindow] = []
    yield opened
    for window in opened:
        qasync_loop.run_until_complete(window.aclose())


def open_window(qtbot: QtBot, database: Path, windows: list[MainWindow]) -> MainWindow:
    window = MainWindow(store_path=database)
    qtbot.addWidget(window)
    window.show()
    windows.append(window)
    return window


async def run_in_window(window: MainWindow, workflow: Workflow, inputs: dict[str, Any] | None = None) -> str:
    window.set_workflow(workflow)
    finished = asyncio.Event()
    window.sig_run_state_changed.connect(lambda state: finished.set() if state in TERMINAL else None)
    run_id = await window.start_run(inputs)
    assert run_id is not None, window.last_error
    await asyncio.wait_for(finished.wait(), RUN_TIMEOUT_S)
    return run_id


def pipeline() -> Workflow:
    from studio.model.document import workflow_from_data

    return workflow_from_data(pipeline_document(), "pipeline")


def failing(name: str = "Failing") -> Workflow:
    return build_workflow([lua_step("bad", "error('broken on purpose')")], name=name)


# -- the Qt-free filter ---------------------------------------------------------------------------------


def row(**changes: Any) -> RunRow:
    values: dict[str, Any] = {
        "run_id": "abcd1234-0000",
        "workflow_id": "w1",
        "workflow_name": "Weekly Report",
        "version_id": "v1",
        "version_number": 1,
        "status": "completed",
        "created_at": 1000.0,
        "started_at": 1000.0,
        "finished_at": 1010.0,
        "owner": None,
    }
    values.update(changes)
    return RunRow(**values)


def test_filter_fields() -> None:
    assert RunFilter().matches(row())
    assert RunFilter(workflow_id="w1").matches(row())
    assert not RunFilter(workflow_id="w2").matches(row())
    assert not RunFilter(version_id="v2").matches(row())
    assert RunFilter(status="completed").matches(row())
    assert not RunFilter(status="failed").matches(row())
    assert RunFilter(since=1000.0, until=1001.0).matches(row())
    assert not RunFilter(since=1000.5).matches(row())
    assert not RunFilter(until=1000.0).matches(row())


def test_filter_search_text() -> None:
    assert RunFilter(text="ABCD").matches(row())
    assert RunFilter(text="weekly").matches(row())
    assert RunFilter(text=" report ").matches(row())
    assert not RunFilter(text="1234").matches(row())
    assert not RunFilter(text="daily").matches(row())


def test_row_duration() -> None:
    assert row().duration(now=5000.0) == 10.0
    assert row(status="running", finished_at=None).duration(now=1004.0) == 4.0
    assert row(status="paused", finished_at=None).duration(now=1004.0) is None


def test_day_bounds_rejects_reversed_range() -> None:
    first = datetime.date(2026, 3, 2)
    start, end = day_bounds(first, first)
    assert end - start == pytest.approx(86400.0, abs=3600.0)
    with pytest.raises(ValueError, match="2026-03-01 is before 2026-03-02"):
        day_bounds(first, datetime.date(2026, 3, 1))


# -- the panel in the window ----------------------------------------------------------------------------


def test_finished_run_rebuilt_after_reopen(
    qtbot: QtBot, database: Path, windows: list[MainWindow], qasync_loop: qasync.QEventLoop
) -> None:
    first = open_window(qtbot, database, windows)
    run_id = qasync_loop.run_until_complete(run_in_window(first, pipeline(), {"count": 3}))
    live_log = len(first.event_log.model.rows())
    qasync_loop.run_until_complete(first.aclose())
    windows.remove(first)
    first.close()

    second = open_window(qtbot, database, windows)
    panel = second.runs_panel
    assert panel.visible_run_ids() == [run_id]
    listed = panel.model.row_of(run_id)
    assert listed is not None
    assert (listed.workflow_name, listed.version_number, listed.status) == ("Squares pipeline", 1, "completed")
    assert listed.finished_at is not None

    with qtbot.waitSignal(second.sig_run_shown, timeout=5000):
        assert panel.select_run(run_id)

    assert second.shown_run_id == run_id
    assert second.workflow is not None and second.workflow.name == "Squares pipeline"
    statuses = {step_id: item.status for step_id, item in second.scene.node_items().items()}
    assert statuses == {step_id: "completed" for step_id in statuses}
    assert "3/3 done" in second.scene.node_items()["loop"].detail
    lanes = [visible.lane.key for visible in second.timeline.visible_lanes()]
    assert lanes == ["numbers", "loop", "loop[0]", "loop[1]", "loop[2]", "total", "announce"]
    assert len(second.event_log.model.rows()) == len(second.store.events(run_id)) == live_log
    assert second.run_state == "completed"
    assert second.run_status_label.text() == "Run completed"


def test_new_runs_appear_live(
    qtbot: QtBot, database: Path, windows: list[MainWindow], qasync_loop: qasync.QEventLoop
) -> None:
    window = open_window(qtbot, database, windows)
    panel = window.runs_panel
    assert panel.visible_run_ids() == []
    first = qasync_loop.run_until_complete(run_in_window(window, pipeline()))
    second = qasync_loop.run_until_complete(run_in_window(window, failing()))

    assert panel.visible_run_ids() == [second, first]
    assert panel.model.row_of(first).status == "completed"  # type: ignore[union-attr]
    assert panel.model.row_of(second).status == "failed"  # type: ignore[union-attr]
    assert panel.selected_run_id() == second
    assert [panel.workflow_combo.itemText(i) for i in range(panel.workflow_combo.count())] == [
        "All workflows",
        "Failing",
        "Squares pipeline",
    ]


def test_runs_of_another_engine_found_by_polling(
    qtbot: QtBot, database: Path, windows: list[MainWindow], qasync_loop: qasync.QEventLoop
) -> None:
    window = open_window(qtbot, database, windows)

    async def run_elsewhere() -> str:
        store = open_store(database)
        engine = Engine(store)
        try:
            run_id = await engine.run_workflow(pipeline())
            await engine.wait(run_id)
            return run_id
        finally:
            await engine.aclose()
            store.close()

    run_id = qasync_loop.run_until_complete(run_elsewhere())
    assert window.runs_panel.visible_run_ids() == []

    window.runs_panel.poll_store()

    assert window.runs_panel.visible_run_ids() == [run_id]
    assert window.runs_panel.model.row_of(run_id).status == "completed"  # type: ignore[union-attr]


def test_filters_narrow_the_list(
    qtbot: QtBot, database: Path, windows: list[MainWindow], qasync_loop: qasync.QEventLoop
) -> None:
    window = open_window(qtbot, database, windows)
    panel = window.runs_panel
    base = pipeline()
    squares = qasync_loop.run_until_complete(run_in_window(window, base))
    broken = qasync_loop.run_until_complete(run_in_window(window, failing("Broken thing")))
    changed = base.model_copy(update={"description": "second version"})
    squares_v2 = qasync_loop.run_until_complete(run_in_window(window, changed))
    assert panel.visible_run_ids() == [squares_v2, broken, squares]

    panel.status_combo.setCurrentIndex(panel.status_combo.findData("failed"))
    assert panel.visible_run_ids() == [broken]
    panel.status_combo.setCurrentIndex(0)

    panel.workflow_combo.setCurrentIndex(panel.workflow_combo.findText("Squares pipeline"))
    assert panel.visible_run_ids() == [squares_v2, squares]
    assert [panel.version_combo.itemText(i) for i in range(panel.version_combo.count())] == [
        "All versions",
        "v2",
        "v1",
    ]
    panel.version_combo.setCurrentIndex(panel.version_combo.findText("v1"))
    assert panel.visible_run_ids() == [squares]
    panel.workflow_combo.setCurrentIndex(0)
    assert not panel.version_combo.isEnabled()
    assert len(panel.visible_run_ids()) == 3

    panel.search_edit.setText(broken[:6])
    assert panel.visible_run_ids() == [broken]
    panel.search_edit.setText("squares")
    assert panel.visible_run_ids() == [squares_v2, squares]
    panel.search_edit.clear()

    panel.since_edit.setDate(QDate.currentDate().addDays(-3))
    panel.until_edit.setDate(QDate.currentDate().addDays(-1))
    panel.dates_check.setChecked(True)
    assert panel.visible_run_ids() == []
    panel.until_edit.setDate(QDate.currentDate())
    assert len(panel.visible_run_ids()) == 3


# -- run buttons ----------------------------------------------------------------------------------------


def wait_workflow(seconds: float) -> Workflow:
    """A long mcp_call step (the studio tool server's ``wait`` tool) followed by a Lua step."""
    return build_workflow(
        [mcp_step("slow", "wait", {"seconds": seconds, "steps": 10}), lua_step("after", "return 'done'")],
        [("slow", "after")],
        name="Slow",
    )


def test_stop_asks_and_lists_cancelled_steps(
    qtbot: QtBot, database: Path, windows: list[MainWindow], qasync_loop: qasync.QEventLoop
) -> None:
    window = open_window(qtbot, database, windows)
    window.set_workflow(wait_workflow(30.0))

    async def run_and_stop() -> tuple[str, list[str]]:
        started = asyncio.Event()
        window.engine.add_listener(
            lambda event: started.set() if event.type == EventType.STEP_STARTED and event.step_id == "slow" else None
        )
        run_id = await window.start_run()
        assert run_id is not None
        await asyncio.wait_for(started.wait(), RUN_TIMEOUT_S)
        await asyncio.sleep(0)  # let the batcher's timer deliver the step start
        stopped: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        window.sig_run_stopped.connect(lambda _run, keys: stopped.done() or stopped.set_result(keys))
        assert window.action_stop.isEnabled()
        box = window.confirm_stop()
        assert box is not None and box.isVisible()
        box.button(QMessageBox.StandardButton.Yes).click()
        keys = await asyncio.wait_for(stopped, RUN_TIMEOUT_S)
        if window.run_state != "stopped":
            ended = asyncio.Event()
            window.sig_run_state_changed.connect(lambda state: ended.set() if state == "stopped" else None)
            await asyncio.wait_for(ended.wait(), RUN_TIMEOUT_S)
        return run_id, keys

    run_id, cancelled = qasync_loop.run_until_complete(run_and_stop())

    assert cancelled == ["slow"]
    assert window.last_stop_cancelled == ["slow"]
    assert "Cancelled steps: slow" in window.statusBar().currentMessage()
    assert window.store.get_run(run_id).status == "stopped"
    assert [s.status for s in window.timeline.model.segments["slow"]] == ["cancelled"]


def test_stop_declined_keeps_running(
    qtbot: QtBot, database: Path, windows: list[MainWindow], qasync_loop: qasync.QEventLoop
) -> None:
    window = open_window(qtbot, database, windows)
    window.set_workflow(wait_workflow(0.5))

    async def run_and_decline() -> str:
        finished = asyncio.Event()
        window.sig_run_state_changed.connect(lambda state: finished.set() if state in TERMINAL else None)
        run_id = await window.start_run()
        assert run_id is not None
        box = window.confirm_stop()
        assert box is not None
        box.button(QMessageBox.StandardButton.No).click()
        await asyncio.wait_for(finished.wait(), RUN_TIMEOUT_S)
        return run_id

    run_id = qasync_loop.run_until_complete(run_and_decline())
    assert window.store.get_run(run_id).status == "completed"


def test_pause_and_resume_selected_run(
    qtbot: QtBot, database: Path, windows: list[MainWindow], qasync_loop: qasync.QEventLoop
) -> None:
    window = open_window(qtbot, database, windows)
    older = qasync_loop.run_until_complete(run_in_window(window, failing()))
    window.set_workflow(wait_workflow(1.0))
    states: list[str] = []
    window.sig_run_state_changed.connect(states.append)

    async def pause_then_resume() -> str:
        paused = asyncio.Event()
        finished = asyncio.Event()
        window.sig_run_state_changed.connect(lambda state: paused.set() if state == "paused" else None)
        run_id = await window.start_run()
        assert run_id is not None
        # Look at an older run, then come back: the buttons follow the shown run.
        assert window.show_run(older)
        assert not window.action_pause.isEnabled()
        assert window.show_run(run_id)
        assert window.action_pause.isEnabled()
        window.action_pause.trigger()
        await asyncio.wait_for(paused.wait(), RUN_TIMEOUT_S)
        assert window.action_resume.isEnabled()
        assert window.store.step_runs(run_id).get("after") is None
        window.sig_run_state_changed.connect(lambda state: finished.set() if state in TERMINAL else None)
        window.action_resume.trigger()
        await asyncio.wait_for(finished.wait(), RUN_TIMEOUT_S)
        # The runs list learns of the end through the event batcher, a frame after the window does.
        deadline = asyncio.get_running_loop().time() + RUN_TIMEOUT_S
        while window.runs_panel.model.row_of(run_id).status != "completed":  # type: ignore[union-attr]
            assert asyncio.get_running_loop().time() < deadline, "the runs list never showed the run completed"
            await asyncio.sleep(0.02)
        return run_id

    run_id = qasync_loop.run_until_complete(pause_then_resume())
    assert window.store.get_run(run_id).status == "completed"
    assert "paused" in states
    assert window.timeline.model.pauses and window.timeline.model.pauses[0][1] is not None
    assert window.runs_panel.model.row_of(run_id).status == "completed"  # type: ignore[union-attr]


def test_stop_run_of_other_engine(
    qtbot: QtBot, database: Path, windows: list[MainWindow], qasync_loop: qasync.QEventLoop
) -> None:
    window = open_window(qtbot, database, windows)

    async def stop_elsewhere() -> tuple[str, list[str], str]:
        store = open_store(database)
        other = Engine(store)
        started = asyncio.Event()
        other.add_listener(lambda event: started.set() if event.type == EventType.STEP_STARTED else None)
        try:
            run_id = await other.run_workflow(wait_workflow(30.0))
            await asyncio.wait_for(started.wait(), RUN_TIMEOUT_S)
            window.runs_panel.poll_store()
            assert window.show_run(run_id)
            assert window.run_state == "running"
            assert window.action_stop.isEnabled()
            tooltip = window.action_stop.toolTip()
            stopped: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
            window.sig_run_stopped.connect(lambda _run, keys: stopped.done() or stopped.set_result(keys))
            box = window.confirm_stop()
            assert box is not None
            box.button(QMessageBox.StandardButton.Yes).click()
            cancelled = await asyncio.wait_for(stopped, RUN_TIMEOUT_S)
            assert not window.engine.is_live(run_id)
            return run_id, cancelled, tooltip
        finally:
            await other.aclose()
            store.close()

    run_id, cancelled, tooltip = qasync_loop.run_until_complete(stop_elsewhere())

    assert "another studio process" in tooltip
    assert cancelled == ["slow"]
    assert window.store.get_run(run_id).status == "stopped"
    assert window.run_state == "stopped"
    assert [s.status for s in window.timeline.model.segments["slow"]] == ["cancelled"]


def test_test_runs_marked_in_version_column(
    qtbot: QtBot, database: Path, windows: list[MainWindow], qasync_loop: qasync.QEventLoop
) -> None:
    window = open_window(qtbot, database, windows)

    async def test_run() -> str:
        run_id = await window.engine.start_test_run(pipeline(), {"count": 2}, pins={})
        await window.engine.wait(run_id)
        return run_id

    run_id = qasync_loop.run_until_complete(test_run())
    qtbot.waitUntil(lambda: window.runs_panel.model.row_of(run_id) is not None)

    position = window.runs_panel.model.position(run_id)
    assert position is not None
    assert window.runs_panel.model.index(position, 2).data() == "test"
    assert window.runs_panel.model.row_of(run_id).is_test  # type: ignore[union-attr]
