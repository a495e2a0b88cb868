"""Event log panel tests: rows per event, coalesced streaming events and following new rows."""

from __future__ import annotations

from typing import Any

from studio.engine.events import EventType, RunEvent
from studio.panels.event_log import EventLogPanel, describe_event


def event(seq: int, kind: EventType, step_key: str | None = None, **data: Any) -> RunEvent:
    step_id = step_key.rpartition(".")[2] if step_key else None
    return RunEvent("run-1", seq, kind, step_key, step_id, data, at=1_700_000_000.0 + seq)


def make_panel(qtbot: Any) -> EventLogPanel:
    panel = EventLogPanel()
    qtbot.addWidget(panel)
    panel.resize(600, 200)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def test_event_log_shows_each_event(qtbot: Any) -> None:
    panel = make_panel(qtbot)
    panel.append_event(event(1, EventType.RUN_CREATED, inputs={"count": 3}))
    panel.append_event(event(2, EventType.STEP_STARTED, "numbers", attempt=1, step_type="lua_script"))
    panel.append_event(event(3, EventType.STEP_COMPLETED, "numbers", duration_s=0.25, result=[1, 2, 3]))
    model = panel.model
    assert model.rowCount() == 3
    cells = [[model.index(row, column).data() for column in range(5)] for row in range(3)]
    assert [row[1] for row in cells] == ["1", "2", "3"]
    assert [row[2] for row in cells] == ["run_created", "step_started", "step_completed"]
    assert cells[2][3] == "numbers"
    assert cells[0][4] == 'inputs: {"count":3}'
    assert cells[2][4] == "took 0.25 s; result: [1,2,3]"


def test_event_log_coalesces_token_deltas(qtbot: Any) -> None:
    panel = make_panel(qtbot)
    panel.append_event(event(1, EventType.STEP_STARTED, "ask", attempt=1, step_type="llm_call"))
    for seq, text in enumerate(["Hel", "lo, ", "world"], start=2):
        panel.append_event(event(seq, EventType.LLM_TOKEN_DELTA, "ask", text=text))
    panel.append_event(event(5, EventType.STEP_COMPLETED, "ask", duration_s=1.0, result="Hello, world"))
    rows = panel.model.rows()
    assert [row.type for row in rows] == ["step_started", "llm_token_delta", "step_completed"]
    assert rows[1].message == "Hello, world"
    assert rows[1].count == 3
    assert rows[1].seq == 4
    assert panel.model.index(1, 2).data() == "llm_token_delta ×3"


def test_event_log_keeps_streams_of_different_steps_apart(qtbot: Any) -> None:
    panel = make_panel(qtbot)
    panel.append_event(event(1, EventType.STEP_PROGRESS, "loop[0].fetch", progress=1, total=4, message="page"))
    panel.append_event(event(2, EventType.STEP_PROGRESS, "loop[1].fetch", progress=1, total=4, message="page"))
    panel.append_event(event(3, EventType.STEP_PROGRESS, "loop[1].fetch", progress=2, total=4, message="page"))
    rows = panel.model.rows()
    expected = [("loop[0].fetch", "1/4 page"), ("loop[1].fetch", "2/4 page")]
    assert [(row.step_key, row.message) for row in rows] == expected


def test_event_log_follows_new_rows_until_scrolled_up(qtbot: Any) -> None:
    panel = make_panel(qtbot)
    for seq in range(1, 101):
        panel.append_event(event(seq, EventType.STEP_LOG, "numbers", level="info", message=f"line {seq}"))
    scroll_bar = panel.table.verticalScrollBar()
    assert scroll_bar.maximum() > 0
    assert scroll_bar.value() == scroll_bar.maximum()

    scroll_bar.setValue(0)
    panel.append_event(event(101, EventType.STEP_LOG, "numbers", level="info", message="line 101"))
    assert scroll_bar.value() == 0

    scroll_bar.setValue(scroll_bar.maximum())
    panel.append_event(event(102, EventType.STEP_LOG, "numbers", level="info", message="line 102"))
    assert scroll_bar.value() == scroll_bar.maximum()


def test_describe_failed_step_mentions_retry() -> None:
    text = describe_event(
        event(7, EventType.STEP_FAILED, "fetch", attempt=1, final=False, error={"kind": "timeout", "message": "slow"})
    )
    assert text == "attempt 1, will retry: timeout: slow"


def test_event_log_clear_removes_rows(qtbot: Any) -> None:
    panel = make_panel(qtbot)
    panel.append_event(event(1, EventType.RUN_STARTED))
    panel.clear()
    assert panel.model.rowCount() == 0
