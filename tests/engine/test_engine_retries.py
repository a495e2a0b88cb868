"""Retry policies, backoff, timeouts, non-retryable failures and continue_on_error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.engine import Engine, EventType, RunEvent
from studio.store import Store
from tests.conftest import EventLog, build_workflow, lua_step, mcp_step

pytestmark = pytest.mark.asyncio(loop_scope="module")

FAST_RETRY = {"max_attempts": 3, "backoff_base_s": 0.05, "jitter": 0.0, "retry_on": ["tool_error"]}


async def test_tool_step_fails_twice_then_succeeds(
    engine: tuple[Engine, EventLog], tools_file: tuple[str, Path], store: Store
) -> None:
    # Lua keeps no state between attempts, so the flaky step reads a file that the test creates
    # only when the engine announces the second retry.
    studio, log = engine
    name, path = tools_file

    def create_file_on_second_retry(event: RunEvent) -> None:
        if event.type == EventType.STEP_RETRYING and event.data["attempt"] == 3:
            path.write_text("ready\n", encoding="utf-8")

    studio.add_listener(create_file_on_second_retry)
    workflow = build_workflow(
        [
            mcp_step("read", "file_read", {"path": name}, retry=FAST_RETRY),
            lua_step("check", "return content", {"content": "{{steps.read.result.content}}"}),
        ]
    )

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"check": "ready\n"}
    retries = log.of_type(EventType.STEP_RETRYING, run_id)
    assert [event.data["attempt"] for event in retries] == [2, 3]
    assert [event.data["delay_s"] for event in retries] == [0.05, 0.1]
    assert all('"kind": "tool_error"' in json.dumps(event.data["error"]) for event in retries)
    assert "was not found" in str(retries[0].data["error"])
    starts = log.of_type(EventType.STEP_STARTED, run_id)
    assert [event.data["attempt"] for event in starts if event.step_key == "read"] == [1, 2, 3]
    assert store.step_runs(run_id)["read"].attempt == 3


async def test_lua_error_retried_until_exhausted(engine: tuple[Engine, EventLog]) -> None:
    studio, log = engine
    workflow = build_workflow([lua_step("boom", "error('always broken')", retry=FAST_RETRY)])

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "failed"
    assert isinstance(summary.error, dict)
    assert summary.error["step_key"] == "boom"
    assert summary.error["kind"] == "tool_error"
    assert "always broken" in str(summary.error["message"])
    assert len(log.of_type(EventType.STEP_STARTED, run_id)) == 3
    final = log.of_type(EventType.STEP_FAILED, run_id)
    assert [event.data["attempt"] for event in final] == [3]


async def test_template_error_not_retried(engine: tuple[Engine, EventLog]) -> None:
    studio, log = engine
    retry_anything = {**FAST_RETRY, "retry_on": ["any"]}
    workflow = build_workflow(
        [
            lua_step("first", "return {a = 1}"),
            lua_step("second", "return x", {"x": "{{steps.first.result.missing}}"}, retry=retry_anything),
        ]
    )

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "failed"
    assert isinstance(summary.error, dict)
    assert summary.error["kind"] == "invalid_input"
    assert "missing" in str(summary.error["message"])
    assert log.of_type(EventType.STEP_RETRYING, run_id) == []
    assert [event.step_key for event in log.of_type(EventType.STEP_STARTED, run_id)] == ["first"]


async def test_timeout_retried_by_policy(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    retry = {"max_attempts": 2, "backoff_base_s": 0.01, "jitter": 0.0, "retry_on": ["timeout"]}
    workflow = build_workflow([mcp_step("slow", "wait", {"seconds": 30, "steps": 30}, timeout_s=0.3, retry=retry)])

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "failed"
    assert isinstance(summary.error, dict)
    assert summary.error["kind"] == "timeout"
    assert "timed out after 0.3 s" in str(summary.error["message"])
    retries = log.of_type(EventType.STEP_RETRYING, run_id)
    assert len(retries) == 1
    assert store.step_runs(run_id)["slow"].attempt == 2


async def test_timeout_not_retried_without_policy(engine: tuple[Engine, EventLog]) -> None:
    studio, log = engine
    workflow = build_workflow([mcp_step("slow", "wait", {"seconds": 30}, timeout_s=0.2, retry=FAST_RETRY)])

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "failed"
    assert log.of_type(EventType.STEP_RETRYING, run_id) == []


async def test_continue_on_error_passes_null(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    workflow = build_workflow(
        [
            lua_step("bad", "error('not today')", continue_on_error=True),
            lua_step("after", "return {was_null = (x == json.null)}", {"x": "{{steps.bad.result}}"}),
        ]
    )

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"after": {"was_null": True}}
    failed = log.of_type(EventType.STEP_FAILED, run_id)
    assert [event.data["continue_on_error"] for event in failed] == [True]
    assert store.step_runs(run_id)["bad"].status == "failed"


async def test_failure_skips_downstream(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    workflow = build_workflow(
        [
            lua_step("ok", "return 1"),
            lua_step("bad", "error('broken on purpose')", {"x": "{{steps.ok.result}}"}),
            lua_step("never", "return y", {"y": "{{steps.bad.result}}"}),
        ]
    )

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "failed"
    rows = store.step_runs(run_id)
    assert rows["ok"].status == "completed"
    assert rows["bad"].status == "failed"
    assert rows["never"].status == "skipped"
    assert [event.step_key for event in log.of_type(EventType.STEP_SKIPPED, run_id)] == ["never"]
