"""Step details tests: inputs, output tree, logs, attempts and LLM token counts of real runs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot

from studio.app.main_window import MainWindow
from studio.model.document import workflow_from_data
from studio.model.workflow import Workflow
from studio.panels.step_details.model import build_step_details, error_text, value_path
from tests.conftest import build_workflow, lua_step, mcp_step
from tests.fakes.openai_server import FakeOpenAIServer, TextReply, openai_server

TERMINAL = ("completed", "failed", "stopped")


@pytest.fixture
def window(qtbot: QtBot, tmp_path: Path, qasync_loop: qasync.QEventLoop) -> Iterator[MainWindow]:
    main_window = MainWindow(store_path=tmp_path / "studio.db")
    qtbot.addWidget(main_window)
    main_window.show()
    yield main_window
    qasync_loop.run_until_complete(main_window.aclose())


def run(window: MainWindow, loop: qasync.QEventLoop, workflow: Workflow, inputs: dict[str, Any] | None = None) -> str:
    window.set_workflow(workflow)

    async def go() -> str:
        finished = asyncio.Event()
        window.sig_run_state_changed.connect(lambda state: finished.set() if state in TERMINAL else None)
        run_id = await window.start_run(inputs)
        assert run_id is not None, window.last_error
        await asyncio.wait_for(finished.wait(), 60.0)
        return run_id

    return loop.run_until_complete(go())


def greeting_workflow() -> Workflow:
    source = (
        "print('hello ' .. name)\n"
        "log('second line')\n"
        "return {greeting = 'hi ' .. name, items = {10, 20, 30}, ['odd key'] = true}"
    )
    return build_workflow(
        [
            lua_step("greet", source, {"name": "{{input.name}}"}),
            lua_step(
                "flaky",
                "error('boom ' .. tostring(n))",
                {"n": "{{steps.greet.result.items[1]}}"},
                retry={"max_attempts": 3, "backoff_base_s": 0.02, "jitter": 0, "retry_on": ["any"]},
            ),
        ],
        [("greet", "flaky")],
        inputs={"name": {"type": "string", "default": "Ada"}},
        name="Greeting",
    )


def test_details_show_inputs_output_and_logs(window: MainWindow, qasync_loop: qasync.QEventLoop) -> None:
    run(window, qasync_loop, greeting_workflow())

    window.show_step_details("greet")

    details = window.step_details.details
    assert details is not None
    assert details.status == "completed"
    assert details.inputs["inputs"] == {"name": "Ada"}
    assert details.result == {"greeting": "hi Ada", "items": [10, 20, 30], "odd key": True}
    assert window.step_details.output_view.value() == details.result
    assert window.step_details.inputs_view.value() == details.inputs
    logs = window.step_details.logs_text.toPlainText()
    assert "hello Ada" in logs
    assert "second line" in logs
    assert [(a.number, a.status) for a in details.attempts] == [(1, "completed")]
    assert window.step_details.tab_titles() == ["Output", "Inputs", "Logs", "Attempts", "Error"]
    assert "greet" in window.step_details.header_label.text()


def test_details_list_failed_attempts(window: MainWindow, qasync_loop: qasync.QEventLoop) -> None:
    run(window, qasync_loop, greeting_workflow())

    window.show_step_details("flaky")

    details = window.step_details.details
    assert details is not None
    assert details.status == "failed"
    assert [(a.number, a.status) for a in details.attempts] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert all("boom 20" in attempt.error for attempt in details.attempts)
    assert [a.retry_delay_s for a in details.attempts] == [pytest.approx(0.02), pytest.approx(0.04), None]
    table = window.step_details.attempts_table
    assert table.rowCount() == 3
    assert table.item(1, 1).text() == "failed"
    assert table.item(0, 4).text() == "0.02 s"
    errors = window.step_details.attempt_errors_text.toPlainText()
    assert errors.count("boom 20") == 3
    assert errors.startswith("Attempt 1: ")
    assert "boom 20" in window.step_details.error_text.toPlainText()
    assert window.step_details.tabs.currentWidget() is window.step_details.error_text


def test_output_tree_copy_and_search(window: MainWindow, qasync_loop: qasync.QEventLoop) -> None:
    run(window, qasync_loop, greeting_workflow())
    window.show_step_details("greet")
    tree = window.step_details.output_view

    assert tree.select_path(["items", 1])
    assert tree.copy_path() == "steps.greet.result.items[1]"
    assert tree.copy_value() == "20"
    assert QGuiApplication.clipboard().text() == "20"
    assert tree.select_path(["odd key"])
    assert tree.copy_path() == 'steps.greet.result["odd key"]'

    tree.search_edit.setText("greeting")
    assert tree.proxy.rowCount() == 1
    assert tree.find_index(["greeting"]).isValid()
    assert not tree.find_index(["items"]).isValid()
    tree.search_edit.setText("20")
    assert tree.find_index(["items", 1]).isValid()
    assert not tree.find_index(["items", 0]).isValid()


def test_progress_messages_of_live_step(window: MainWindow, qasync_loop: qasync.QEventLoop) -> None:
    workflow = build_workflow([mcp_step("slow", "wait", {"seconds": 0.3, "steps": 3})], name="Waiting")
    run(window, qasync_loop, workflow)

    window.show_step_details("slow")

    logs = window.step_details.logs_text.toPlainText()
    assert "3/3 step 3 of 3" in logs
    assert window.step_details.details is not None
    assert window.step_details.details.result["waited_s"] == pytest.approx(0.3)


def test_store_poll_after_run_end_keeps_queued_progress(window: MainWindow, qasync_loop: qasync.QEventLoop) -> None:
    # The poll for runs of other processes can fire after this engine's run ended but before the
    # batcher delivered its last events. The progress events among them are not in the store.
    window.set_workflow(build_workflow([mcp_step("slow", "wait", {"seconds": 0.05, "steps": 2})], name="Waiting"))
    window.event_batcher.flush()
    window.event_batcher._timer.setInterval(60_000)

    async def go() -> str:
        run_id = await window.start_run(None)
        assert run_id is not None, window.last_error
        await window.engine.wait(run_id)
        return run_id

    qasync_loop.run_until_complete(go())
    assert window.event_batcher.pending() > 0
    window._poll_shown_run()

    assert window.run_state == "completed"
    window.show_step_details("slow")
    assert "2/2 step 2 of 2" in window.step_details.logs_text.toPlainText()


@pytest.fixture
def llm_server() -> Iterator[FakeOpenAIServer]:
    with openai_server(api_key="sk-ui-test") as server:
        yield server


def test_llm_call_prompt_response_and_tokens(
    qtbot: QtBot, tmp_path: Path, qasync_loop: qasync.QEventLoop, llm_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ui-test")
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    llm_server.script(TextReply("Paris is the capital.", usage=(17, 5)))
    window = MainWindow(store_path=tmp_path / "studio.db")
    qtbot.addWidget(window)
    workflow = workflow_from_data(
        {
            "schema_version": 1,
            "name": "Ask",
            "steps": [
                {
                    "id": "ask",
                    "type": "llm_call",
                    "config": {"model": "fake-model", "system_prompt": "Be brief.",
                               "prompt": "Capital of {{input.country}}?"},
                }
            ],
            "input_schema": {"type": "object", "properties": {"country": {"type": "string", "default": "France"}}},
        },
        "ask",
    )
    try:
        run(window, qasync_loop, workflow)
        window.show_step_details("ask")
        panel = window.step_details
        assert "LLM" in panel.tab_titles()
        assert panel.prompt_text.toPlainText() == "System:\nBe brief.\n\nUser:\nCapital of France?"
        assert panel.response_text.toPlainText() == "Paris is the capital."
        assert panel.tokens_label.text() == "Tokens: 17 prompt + 5 completion = 22"
        assert "sk-ui-test" not in panel.inputs_view.copy_value()  # type: ignore[operator]
    finally:
        qasync_loop.run_until_complete(window.aclose())


def test_build_details_without_record() -> None:
    events = [
        {"type": "step_started", "step_key": "loop[2].x", "at": 5.0, "data": {"attempt": 1}},
        {"type": "step_failed", "step_key": "loop[2].x", "at": 6.0,
         "data": {"attempt": 1, "final": True, "error": {"kind": "cancelled", "message": "stopped"}}},
        {"type": "step_started", "step_key": "loop[1].x", "at": 5.0, "data": {"attempt": 1}},
    ]
    details = build_step_details("r", "loop[2].x", None, events)
    assert details.step_id == "x"
    assert [(a.number, a.status, a.duration_s) for a in details.attempts] == [(1, "cancelled", 1.0)]
    assert details.prompt_text == ""
    assert error_text({"kind": "tool_error", "message": "bad"}) == "tool_error: bad"
    assert error_text(None) == ""
    assert value_path("inputs", ["a-b", 0, "c d"]) == 'inputs.a-b[0]["c d"]'
