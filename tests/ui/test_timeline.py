"""Timeline tests: lanes and bar geometry from known events, ticks, and clicks on a real run's bars."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QPoint, Qt
from pytestqt.qtbot import QtBot

from studio.app.main_window import MainWindow
from studio.panels.timeline.model import (
    TimelineGeometry,
    TimelineModel,
    format_offset,
    item_key_of,
    tick_step,
    time_ticks,
)
from tests.conftest import build_workflow, for_each_step, lua_step

TERMINAL = ("completed", "failed", "stopped")
RUN_TIMEOUT_S = 60.0


def event(seq: int, kind: str, at: float, step_key: str | None = None, **data: Any) -> dict[str, Any]:
    """Return a journaled event dict as ``Store.events`` returns it."""
    return {"run_id": "r1", "seq": seq, "type": kind, "step_key": step_key, "at": at, "data": data}


def known_events() -> list[dict[str, Any]]:
    """A run with a retried step, a fan-out of two items, a pause and a human task; times in seconds."""
    error = {"kind": "transient", "message": "connection reset"}
    return [
        event(1, "run_created", 100.0),
        event(2, "run_started", 100.0),
        event(3, "step_started", 100.5, "a", attempt=1, step_type="lua_script"),
        event(4, "step_failed", 101.0, "a", attempt=1, final=False, error=error),
        event(5, "step_retrying", 101.0, "a", attempt=2, delay_s=0.5, error=error),
        event(6, "step_started", 101.5, "a", attempt=2, step_type="lua_script"),
        event(7, "step_completed", 102.0, "a", duration_s=0.5, result=1),
        event(8, "step_started", 102.0, "loop", attempt=1, step_type="for_each"),
        event(9, "step_started", 102.1, "loop[1].sq", attempt=1),
        event(10, "step_completed", 102.3, "loop[1].sq", result=4),
        event(11, "step_started", 102.2, "loop[0].sq", attempt=1),
        event(12, "step_completed", 102.4, "loop[0].sq", result=1),
        event(13, "step_skipped", 102.4, "loop[0].label", reason="an upstream step failed"),
        event(14, "step_completed", 102.5, "loop", result=[1, 4]),
        event(15, "run_paused", 102.6),
        event(16, "run_resumed", 103.0),
        event(17, "step_waiting", 103.0, "h", task_id="t1"),
        event(18, "task_resolved", 104.0, "h", task_id="t1", decision="approve"),
        event(19, "step_completed", 104.1, "h", result={"approved": True}),
        event(20, "run_completed", 104.2, result=None),
    ]


def spans(model: TimelineModel, key: str) -> list[tuple[str, str, float, float | None, int]]:
    return [(s.kind, s.status, s.start, s.end, s.attempt) for s in model.segments[key]]


def test_item_key_parsing() -> None:
    assert item_key_of("loop[3].square") == ("loop[3]", "loop", 3)
    assert item_key_of("outer[0].inner[2].x") == ("outer[0].inner[2]", "outer[0].inner", 2)
    assert item_key_of("top") is None
    assert item_key_of("loop.square") is None


def test_model_lanes_from_known_events() -> None:
    model = TimelineModel("r1")
    model.apply_all(known_events())

    rows = [(row.lane.key, row.lane.kind, row.depth) for row in model.visible_lanes()]
    assert rows == [
        ("a", "step", 0),
        ("loop", "container", 0),
        ("loop[0]", "item", 1),
        ("loop[1]", "item", 1),
        ("h", "step", 0),
    ]
    assert model.lanes["loop[0]"].step_keys == ["loop[0].sq", "loop[0].label"]
    assert model.run_start == 100.0
    assert model.run_end == 104.2
    assert model.run_status == "completed"
    assert not model.is_live()
    assert model.pauses == [[102.6, 103.0]]


def test_model_retry_attempts_and_gap() -> None:
    model = TimelineModel("r1")
    model.apply_all(known_events())

    assert spans(model, "a") == [
        ("attempt", "failed", 100.5, 101.0, 1),
        ("retry_delay", "retrying", 101.0, 101.5, 2),
        ("attempt", "completed", 101.5, 102.0, 2),
    ]
    assert model.segments["a"][1].planned_end == 101.5


def test_model_waiting_and_skipped() -> None:
    model = TimelineModel("r1")
    model.apply_all(known_events())

    assert spans(model, "h") == [
        ("waiting", "waiting", 103.0, 104.0, 1),
        ("attempt", "completed", 104.0, 104.1, 1),
    ]
    assert spans(model, "loop[0].label") == [("skipped", "skipped", 102.4, 102.4, 1)]


def test_model_reused_and_pinned_steps() -> None:
    model = TimelineModel("r1")
    error = {"kind": "transient", "message": "tolerated"}
    model.apply_all(
        [
            event(1, "run_created", 200.0),
            event(2, "step_completed", 200.0, "fetch", result=3, duration_s=0.75, attempt=1, reused_from="r0"),
            event(3, "step_failed", 200.0, "flaky", error=error, attempt=2, final=True, reused_from="r0"),
            event(4, "step_completed", 200.0, "pinned", result=1, duration_s=0.0, attempt=0, pinned=True),
            event(5, "run_started", 200.1),
            event(6, "step_started", 200.2, "next", attempt=1),
            event(7, "step_completed", 200.4, "next", result=4),
        ]
    )

    assert spans(model, "fetch") == [("reused", "completed", 200.0, 200.75, 1)]
    assert spans(model, "flaky") == [("reused", "tolerated", 200.0, 200.0, 2)]
    assert spans(model, "pinned") == [("pinned", "completed", 200.0, 200.0, 0)]
    assert spans(model, "next") == [("attempt", "completed", 200.2, 200.4, 1)]


def test_model_ignores_seen_events() -> None:
    model = TimelineModel("r1")
    events = known_events()
    model.apply_all(events[:7])
    model.apply_all(events)

    assert len(model.segments["a"]) == 3


def test_model_stop_cancels_open_steps() -> None:
    model = TimelineModel("r1")
    model.apply_all(
        [
            event(1, "run_created", 10.0),
            event(2, "step_started", 10.0, "slow", attempt=1),
            event(3, "step_started", 10.0, "other", attempt=1),
        ]
    )
    assert model.is_live()
    assert model.time_span(now=15.0) == (10.0, 15.0)

    model.apply(event(4, "run_stopped", 12.0, cancelled=["slow"]))

    assert spans(model, "slow") == [("attempt", "cancelled", 10.0, 12.0, 1)]
    assert spans(model, "other") == [("attempt", "stopped", 10.0, 12.0, 1)]
    assert not model.is_live()


def test_model_collapse_hides_items() -> None:
    model = TimelineModel("r1")
    model.apply_all(known_events())
    model.toggle("loop")

    rows = model.visible_lanes()
    assert [row.lane.key for row in rows] == ["a", "loop", "h"]
    assert rows[1].collapsed

    model.toggle("loop")
    assert len(model.visible_lanes()) == 5


def test_geometry_bar_rectangles() -> None:
    model = TimelineModel("r1")
    model.apply_all(known_events())
    geometry = TimelineGeometry(origin=100.0, pixels_per_second=100.0)
    first, gap, second = model.segments["a"]

    rect = geometry.bar_rect(first, 0, now=200.0)
    assert (rect.x, rect.y, rect.width, rect.height) == pytest.approx((220.0, 29.0, 50.0, 16.0))
    rect = geometry.bar_rect(gap, 0, now=200.0)
    assert (rect.x, rect.y, rect.width, rect.height) == pytest.approx((270.0, 29.0 + 16 / 3, 50.0, 16 / 3))
    rect = geometry.bar_rect(second, 0, now=200.0)
    assert (rect.x, rect.width) == pytest.approx((320.0, 50.0))
    item = model.segments["loop[0].sq"][0]
    rect = geometry.bar_rect(item, 2, now=200.0)
    assert (rect.x, rect.y, rect.width) == pytest.approx((390.0, 73.0, 20.0))


def test_geometry_minimum_width_and_open_bars() -> None:
    geometry = TimelineGeometry(origin=100.0, pixels_per_second=100.0)
    model = TimelineModel("r1")
    model.apply_all(known_events())
    skipped = model.segments["loop[0].label"][0]
    assert geometry.bar_rect(skipped, 2, now=0.0).width == pytest.approx(3.0)

    live = TimelineModel("r2")
    live.apply_all([event(1, "run_created", 100.0), event(2, "step_started", 100.0, "s", attempt=1)])
    rect = geometry.bar_rect(live.segments["s"][0], 0, now=101.25)
    assert rect.width == pytest.approx(125.0)


def test_geometry_hit_test() -> None:
    model = TimelineModel("r1")
    model.apply_all(known_events())
    geometry = TimelineGeometry(origin=100.0, pixels_per_second=100.0)
    rows = model.visible_lanes()

    hit = geometry.hit(rows, model, 225.0, 35.0, now=200.0)
    assert hit is not None and (hit.step_key, hit.attempt) == ("a", 1)
    hit = geometry.hit(rows, model, 395.0, 75.0, now=200.0)
    assert hit is not None and hit.step_key == "loop[0].sq"
    assert geometry.hit(rows, model, 100.0, 35.0, now=200.0) is None
    assert geometry.hit(rows, model, 225.0, 10.0, now=200.0) is None
    assert geometry.hit(rows, model, 600.0, 35.0, now=200.0) is None


def test_geometry_scroll_moves_rows() -> None:
    geometry = TimelineGeometry(origin=0.0, pixels_per_second=10.0, scroll_y=44.0)
    assert geometry.lane_top(2) == pytest.approx(26.0)
    assert geometry.row_at(30.0) == 2
    assert geometry.row_at(20.0) is None


def test_ticks_and_labels() -> None:
    assert tick_step(100.0) == 1.0
    assert tick_step(1000.0) == 0.1
    assert tick_step(1.0) == 120.0
    ticks = time_ticks(100.0, 99.5, 104.2, 100.0)
    assert ticks == [(100.0, "0 s"), (101.0, "1 s"), (102.0, "2 s"), (103.0, "3 s"), (104.0, "4 s")]
    fine = time_ticks(100.0, 100.0, 100.35, 1000.0)
    assert [label for _at, label in fine] == ["0.0 s", "0.1 s", "0.2 s", "0.3 s"]
    assert format_offset(150.0, 30.0) == "2 min 30 s"
    assert format_offset(120.0, 60.0) == "2 min"
    assert format_offset(3900.0, 600.0) == "1 h 05 min"
    assert format_offset(0.25, 0.05) == "0.25 s"


# -- the widget on a real run -------------------------------------------------------------------------


def fan_out_workflow() -> Any:
    return build_workflow(
        [
            lua_step("numbers", "return {1, 2, 3}"),
            for_each_step(
                "loop", "{{steps.numbers.result}}", [lua_step("square", "return item * item", {"item": "{{item}}"})]
            ),
            lua_step(
                "flaky",
                "error('boom')",
                retry={"max_attempts": 2, "backoff_base_s": 0.05, "jitter": 0, "retry_on": ["any"]},
            ),
        ],
        [("numbers", "loop"), ("loop", "flaky")],
        name="Fan-out timeline",
    )


@pytest.fixture
def window(qtbot: QtBot, tmp_path: Path) -> MainWindow:
    main_window = MainWindow(store_path=tmp_path / "studio.db")
    qtbot.addWidget(main_window)
    main_window.show()
    return main_window


async def run_to_end(window: MainWindow) -> str:
    finished = asyncio.Event()
    window.sig_run_state_changed.connect(lambda state: finished.set() if state in TERMINAL else None)
    run_id = await window.start_run()
    assert run_id is not None, window.last_error
    await asyncio.wait_for(finished.wait(), RUN_TIMEOUT_S)
    return run_id


def test_real_run_lanes_and_attempts(window: MainWindow, qasync_loop: qasync.QEventLoop) -> None:
    window.set_workflow(fan_out_workflow())
    qasync_loop.run_until_complete(run_to_end(window))

    model = window.timeline.model
    keys = [row.lane.key for row in model.visible_lanes()]
    assert keys == ["numbers", "loop", "loop[0]", "loop[1]", "loop[2]", "flaky"]
    flaky = [(s.kind, s.status, s.attempt) for s in model.segments["flaky"]]
    assert flaky == [("attempt", "failed", 1), ("retry_delay", "retrying", 2), ("attempt", "failed", 2)]
    gap = model.segments["flaky"][1]
    assert gap.end is not None and gap.end - gap.start >= 0.04
    assert model.run_status == "failed"
    assert not window.timeline.is_animating()


def test_click_bar_selects_node_and_details(window: MainWindow, qasync_loop: qasync.QEventLoop, qtbot: QtBot) -> None:
    window.set_workflow(fan_out_workflow())
    qasync_loop.run_until_complete(run_to_end(window))
    window.timeline.resize(900, 300)
    window.timeline.fit()

    rect = window.timeline.bar_rect("loop[1].square")
    assert rect is not None
    qtbot.mouseClick(
        window.timeline, Qt.MouseButton.LeftButton, pos=QPoint(int(rect.center().x()), int(rect.center().y()))
    )

    node = window.scene.node_item("square")
    assert node is not None and node.isSelected()
    assert window.step_details.details is not None
    assert window.step_details.details.step_key == "loop[1].square"
    assert window.step_details.details.result == 4


def test_click_label_collapses_fan_out(window: MainWindow, qasync_loop: qasync.QEventLoop, qtbot: QtBot) -> None:
    window.set_workflow(fan_out_workflow())
    qasync_loop.run_until_complete(run_to_end(window))
    window.timeline.resize(900, 300)
    geometry = window.timeline.view_geometry
    loop_row_y = int(geometry.lane_top(1) + geometry.lane_height / 2)

    qtbot.mouseClick(window.timeline, Qt.MouseButton.LeftButton, pos=QPoint(20, loop_row_y))

    assert [row.lane.key for row in window.timeline.visible_lanes()] == ["numbers", "loop", "flaky"]


def test_zoom_and_pan_keys(window: MainWindow, qasync_loop: qasync.QEventLoop, qtbot: QtBot) -> None:
    window.set_workflow(fan_out_workflow())
    qasync_loop.run_until_complete(run_to_end(window))
    timeline = window.timeline
    timeline.resize(900, 300)
    timeline.fit()
    fitted = timeline.view_geometry.pixels_per_second
    # Keys go where the focus is: with the canvas focused, its arrow keys nudge nodes instead.
    window.activateWindow()
    timeline.setFocus()
    qtbot.waitUntil(timeline.hasFocus)

    qtbot.keyClick(timeline, Qt.Key.Key_Plus)
    assert timeline.view_geometry.pixels_per_second == pytest.approx(fitted * 1.25)
    assert not timeline.auto_fit
    origin = timeline.view_geometry.origin
    qtbot.keyClick(timeline, Qt.Key.Key_Right)
    assert timeline.view_geometry.origin > origin
    qtbot.keyClick(timeline, Qt.Key.Key_0)
    assert timeline.view_geometry.pixels_per_second == pytest.approx(fitted)
    assert timeline.auto_fit


def test_now_line_timer_only_while_live(window: MainWindow, qasync_loop: qasync.QEventLoop) -> None:
    workflow = build_workflow([lua_step("spin", "local x = 0 for i = 1, 2e6 do x = x + i end return x")], name="Spin")
    window.set_workflow(workflow)
    animating: list[bool] = []

    async def run() -> None:
        started = asyncio.Event()
        window.sig_run_state_changed.connect(lambda state: started.set() if state == "running" else None)
        finished = asyncio.Event()
        window.sig_run_state_changed.connect(lambda state: finished.set() if state in TERMINAL else None)
        await window.start_run()
        await asyncio.wait_for(started.wait(), RUN_TIMEOUT_S)
        animating.append(window.timeline.is_animating())
        await asyncio.wait_for(finished.wait(), RUN_TIMEOUT_S)
        animating.append(window.timeline.is_animating())

    qasync_loop.run_until_complete(run())
    assert animating == [True, False]


def test_scroll_bar_follows_lanes(qtbot: QtBot) -> None:
    from studio.panels.timeline.widget import TimelineWidget

    widget = TimelineWidget()
    qtbot.addWidget(widget)
    widget.resize(600, 200)
    widget.show()
    model = TimelineModel("r1")
    events = [event(1, "run_created", 0.0), event(2, "step_started", 0.0, "loop", attempt=1)]
    for index in range(30):
        events.append(event(3 + index, "step_started", 0.1 * index, f"loop[{index}].work", attempt=1))
    model.apply_all(events)
    widget.set_model(model)

    bar = widget.scroll_bar
    assert bar.isVisible()
    assert bar.maximum() == 31 * 22 - (200 - 26)
    bar.setValue(100)
    assert widget.view_geometry.scroll_y == 100.0
    assert widget.view_geometry.row_at(26.0) == 4

    bar.setValue(0)
    assert widget.click_at(20.0, 26.0 + 11.0) is None
    assert model.collapsed == {"loop"}
    assert not bar.isVisible()
    assert widget.view_geometry.scroll_y == 0.0


def test_canvas_selection_opens_details(window: MainWindow, qasync_loop: qasync.QEventLoop) -> None:
    window.set_workflow(fan_out_workflow())
    qasync_loop.run_until_complete(run_to_end(window))

    node = window.scene.node_item("square")
    assert node is not None
    node.setSelected(True)

    details = window.step_details.details
    assert details is not None
    # A body step has one execution per item; the details show one of them and the timeline marks it.
    assert details.step_key in {"loop[0].square", "loop[1].square", "loop[2].square"}
    assert window.timeline.selected_key == details.step_key
    assert details.result == {"loop[0].square": 1, "loop[1].square": 4, "loop[2].square": 9}[details.step_key]
