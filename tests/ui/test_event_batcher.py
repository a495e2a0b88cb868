"""Event batcher tests: bursts arrive as one batch per frame, in order, and the window coalesces a real run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import qasync
from pytestqt.qtbot import QtBot

from studio.app.event_batcher import EventBatcher
from studio.app.main_window import MainWindow
from studio.engine.events import EventType, RunEvent
from tests.conftest import build_workflow, for_each_step, lua_step


def progress_events(count: int) -> list[RunEvent]:
    return [
        RunEvent("r1", seq, EventType.STEP_PROGRESS, "s", "s", {"progress": seq, "total": count, "message": ""})
        for seq in range(1, count + 1)
    ]


def test_burst_delivered_once_in_order(qtbot: QtBot) -> None:
    batcher = EventBatcher()
    events = progress_events(1000)

    with qtbot.waitSignal(batcher.sig_events_delivered, timeout=2000) as blocker:
        for event in events:
            batcher.push(event)
        assert batcher.deliveries == 0
        assert batcher.pending() == 1000

    assert blocker.args[0] == events
    assert batcher.deliveries == 1
    assert batcher.delivered_events == 1000
    assert batcher.pending() == 0


def test_immediate_mode_delivers_each_event(qtbot: QtBot) -> None:
    batcher = EventBatcher()
    batcher.immediate = True
    batches: list[list[RunEvent]] = []
    batcher.sig_events_delivered.connect(batches.append)

    for event in progress_events(50):
        batcher.push(event)

    assert len(batches) == 50
    assert all(len(batch) == 1 for batch in batches)
    assert batcher.deliveries == 50


def test_flush_and_clear(qtbot: QtBot) -> None:
    batcher = EventBatcher()
    batches: list[list[RunEvent]] = []
    batcher.sig_events_delivered.connect(batches.append)
    events = progress_events(3)

    batcher.push(events[0])
    batcher.flush()
    batcher.flush()
    batcher.push(events[1])
    batcher.clear()
    batcher.push(events[2])
    batcher.flush()

    assert batches == [[events[0]], [events[2]]]


def test_negative_interval_rejected() -> None:
    with pytest.raises(ValueError, match="interval_ms must be 0 or more, got -1"):
        EventBatcher(interval_ms=-1)


def test_window_coalesces_real_run(qtbot: QtBot, tmp_path: Path, qasync_loop: qasync.QEventLoop) -> None:
    window = MainWindow(store_path=tmp_path / "studio.db")
    qtbot.addWidget(window)
    window.show()
    workflow = build_workflow(
        [
            lua_step("numbers", "local t = {} for i = 1, 200 do t[i] = i end return t"),
            for_each_step("loop", "{{steps.numbers.result}}", [lua_step("square", "return x * x", {"x": "{{item}}"})],
                          max_parallelism=8),
        ],
        [("numbers", "loop")],
        name="Many items",
    )
    window.set_workflow(workflow)
    announced: list[RunEvent] = []
    window.engine.add_listener(announced.append)

    async def run() -> str:
        finished = asyncio.Event()
        window.sig_run_state_changed.connect(lambda state: finished.set() if state == "completed" else None)
        run_id = await window.start_run()
        assert run_id is not None, window.last_error
        await asyncio.wait_for(finished.wait(), 60.0)
        return run_id

    run_id = qasync_loop.run_until_complete(run())

    batcher = window.event_batcher
    assert batcher.delivered_events == len(announced)
    assert len(announced) > 400
    assert batcher.deliveries < len(announced) / 4
    journaled = window.store.events(run_id)
    assert len(window.event_log.model.rows()) == len([e for e in announced if e.run_id == run_id])
    assert len(journaled) == len([e for e in announced if not e.is_ephemeral])
    assert window.scene.node_item("square") is not None
    assert window.scene.node_item("square").status == "completed"  # type: ignore[union-attr]
