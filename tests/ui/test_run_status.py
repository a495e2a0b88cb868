"""Run status tracker tests: step statuses from events and for_each item counts."""

from __future__ import annotations

from typing import Any

from studio.app.run_status import RunStatusTracker, StatusUpdate, format_duration, split_step_key
from studio.engine.events import EventType, RunEvent
from studio.model.document import workflow_from_data


def event(seq: int, kind: EventType, step_key: str | None = None, **data: Any) -> RunEvent:
    step_id = step_key.rpartition(".")[2] if step_key else None
    return RunEvent("run-1", seq, kind, step_key, step_id, data)


def last_status(updates: list[StatusUpdate], step_id: str) -> StatusUpdate:
    return [update for update in updates if update.step_id == step_id][-1]


def test_split_step_key() -> None:
    assert split_step_key("total") == (None, None)
    assert split_step_key("loop[3].square") == ("loop", "loop[3]")
    assert split_step_key("outer[1].inner[2].leaf") == ("inner", "outer[1].inner[2]")


def test_format_duration() -> None:
    assert format_duration(0.4213) == "0.42 s"
    assert format_duration(12.34) == "12.3 s"
    assert format_duration(125.0) == "2 min 05 s"


def test_tracker_maps_step_events(pipeline: dict[str, Any]) -> None:
    tracker = RunStatusTracker(workflow_from_data(pipeline))
    assert tracker.apply(event(1, EventType.RUN_STARTED)) == []
    assert tracker.run_state == "running"
    assert tracker.apply(event(2, EventType.STEP_STARTED, "numbers", attempt=1)) == [StatusUpdate("numbers", "running")]
    failed = tracker.apply(event(3, EventType.STEP_FAILED, "numbers", attempt=1, final=False,
                                 error={"kind": "timeout", "message": "slow"}))
    assert failed == [StatusUpdate("numbers", "retrying", "timeout: slow")]
    retry = tracker.apply(event(4, EventType.STEP_RETRYING, "numbers", attempt=2, delay_s=1.5))
    assert retry == [StatusUpdate("numbers", "retrying", "attempt 2 in 1.5 s")]
    done = tracker.apply(event(5, EventType.STEP_COMPLETED, "numbers", duration_s=0.5))
    assert done == [StatusUpdate("numbers", "completed", "0.50 s")]
    tracker.apply(event(6, EventType.RUN_FAILED, error={"kind": "tool_error", "message": "boom"}))
    assert tracker.run_state == "failed"
    assert tracker.error == "tool_error: boom"


def test_tracker_counts_for_each_items(pipeline: dict[str, Any]) -> None:
    tracker = RunStatusTracker(workflow_from_data(pipeline))
    tracker.apply(event(1, EventType.STEP_STARTED, "loop", attempt=1))
    for index in range(3):
        tracker.apply(event(10 + index, EventType.STEP_STARTED, f"loop[{index}].square", attempt=1))
    updates = tracker.apply(event(20, EventType.STEP_COMPLETED, "loop[0].square", duration_s=0.1))
    assert last_status(updates, "square") == StatusUpdate("square", "running", "1/3 items")
    assert last_status(updates, "loop") == StatusUpdate("loop", "running", "0/3 done")

    tracker.apply(event(21, EventType.STEP_STARTED, "loop[0].label", attempt=1))
    updates = tracker.apply(event(22, EventType.STEP_COMPLETED, "loop[0].label", duration_s=0.1))
    assert last_status(updates, "loop") == StatusUpdate("loop", "running", "1/3 done")

    updates = tracker.apply(event(23, EventType.STEP_FAILED, "loop[1].square", attempt=1, final=True,
                                  error={"kind": "tool_error", "message": "bad item"}))
    assert last_status(updates, "loop") == StatusUpdate("loop", "running", "1/3 done, 1 failed")
    assert last_status(updates, "square").status == "running"

    tracker.apply(event(24, EventType.STEP_COMPLETED, "loop[2].square", duration_s=0.1))
    updates = tracker.apply(event(25, EventType.STEP_FAILED, "loop", attempt=1, final=True,
                                  error={"kind": "tool_error", "message": "1 item failed"}))
    expected = StatusUpdate("loop", "failed", "1/3 done, 1 failed, tool_error: 1 item failed")
    assert last_status(updates, "loop") == expected


def test_tracker_uses_progress_total(pipeline: dict[str, Any]) -> None:
    tracker = RunStatusTracker(workflow_from_data(pipeline))
    tracker.apply(event(1, EventType.STEP_STARTED, "loop", attempt=1))
    updates = tracker.apply(event(2, EventType.STEP_PROGRESS, "loop", progress=0, total=10, message=""))
    assert updates == [StatusUpdate("loop", "running", "0/10 done")]


def test_tracker_marks_cancelled_steps_on_stop(pipeline: dict[str, Any]) -> None:
    tracker = RunStatusTracker(workflow_from_data(pipeline))
    tracker.apply(event(1, EventType.STEP_STARTED, "total", attempt=1))
    updates = tracker.apply(event(2, EventType.RUN_STOPPED, cancelled=["total"]))
    assert updates == [StatusUpdate("total", "skipped", "stopped")]
    assert tracker.run_state == "stopped"
