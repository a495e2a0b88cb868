"""Hostile or broken steps end to end: runaway Lua, missing and crashing MCP servers, failing LLM servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from studio.engine import Engine, EventType, ExecutorServices
from studio.store import Store
from tests.conftest import TOOLS_URL, EngineFactory, EventLog, build_workflow, lua_step, mcp_step
from tests.fakes.openai_server import FakeOpenAIServer, Hang, TextReply, openai_server, rate_limited, server_error

pytestmark = pytest.mark.asyncio(loop_scope="module")

FAKE_KEY = "sk-test-bad-input-key"


def guarded(source: str, **config: Any) -> list[dict[str, Any]]:
    """A completed first step, then a Lua step running ``source`` with extra Lua config."""
    step = lua_step("hostile", source, {"x": "{{steps.first.result}}"})
    step["config"].update(config)
    return [lua_step("first", "return 'kept'"), step]


async def run_failing(studio: Engine, steps: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """Run a workflow that must fail and return its run error."""
    summary = await studio.wait(await studio.run_workflow(build_workflow(steps, **kwargs)))
    assert summary.status == "failed", summary.result
    assert isinstance(summary.error, dict)
    return summary.error


@pytest.mark.parametrize(
    ("source", "config", "kind", "phrase"),
    [
        ("while true do end", {"timeout_s": 0.3}, "timeout", "0.3"),
        (
            "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 100) .. i end",
            {"memory_limit_mb": 8},
            "tool_error",
            "memory",
        ),
        ("os.execute('touch /tmp/studio-pwned')", {}, "tool_error", "os"),
        ("return require('io')", {}, "tool_error", "require"),
    ],
)
async def test_hostile_lua_fails_step(
    engine: tuple[Engine, EventLog], store: Store, source: str, config: dict[str, Any], kind: str, phrase: str
) -> None:
    studio, _ = engine

    error = await run_failing(studio, guarded(source, **config))

    assert error["step_key"] == "hostile"
    assert error["kind"] == kind
    assert phrase in str(error["message"])
    run_id = store.list_runs(limit=1)[0].id
    rows = store.step_runs(run_id)
    assert rows["first"].status == "completed"
    assert rows["first"].result == "kept"
    assert rows["hostile"].status == "failed"
    assert not os.path.exists("/tmp/studio-pwned")


async def test_missing_mcp_command(engine: tuple[Engine, EventLog]) -> None:
    studio, _ = engine
    steps = [mcp_step("call", "anything", server="stdio:/nonexistent/bin/mcp-server-nothing --flag")]

    error = await run_failing(studio, steps)

    assert error["step_key"] == "call"
    assert "command '/nonexistent/bin/mcp-server-nothing' was not found" in str(error["message"])


async def test_unknown_tool_named(engine: tuple[Engine, EventLog]) -> None:
    studio, _ = engine

    error = await run_failing(studio, [mcp_step("call", "no_such_tool")])

    assert "no_such_tool" in str(error["message"])


async def test_server_crash_fails_step_then_restarts(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _ = engine
    # A server of its own (another command line), so the module's shared tool server keeps running.
    server = f"{TOOLS_URL} --log-level ERROR"
    workflow = build_workflow(
        [
            mcp_step("before", "server_info", server=server),
            mcp_step("crash", "crash", {"message": "going down now"}, server=server, continue_on_error=True),
            mcp_step("after", "server_info", server=server),
        ],
        [("before", "crash"), ("crash", "after")],
    )

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    crash = store.step_runs(run_id)["crash"]
    assert crash.status == "failed"
    assert isinstance(crash.error, dict)
    assert crash.error["kind"] == "transient"
    assert "dropped the connection while tool 'crash' was running" in str(crash.error["message"])
    assert "going down now" in str(crash.error["message"]), "the message shows the server's last stderr lines"
    before, after = store.step_runs(run_id)["before"].result, store.step_runs(run_id)["after"].result
    assert isinstance(before, dict)
    assert isinstance(after, dict)
    assert after["pid"] != before["pid"], "the pool must start a new server after the crash"


# -- LLM servers --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeOpenAIServer]:
    with openai_server(api_key=FAKE_KEY) as server:
        yield server


async def llm_engine(make_engine: EngineFactory, server: FakeOpenAIServer) -> tuple[Engine, EventLog]:
    services = ExecutorServices(environ={"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": FAKE_KEY})
    return await make_engine(services=services)


def llm_step(step_id: str = "ask", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "llm_call", "config": {"model": "fake-model", "prompt": "Say hello"}, **extra}


async def test_llm_rate_limit_then_success(make_engine: EngineFactory, llm_server: FakeOpenAIServer) -> None:
    studio, log = await llm_engine(make_engine, llm_server)
    llm_server.script(rate_limited(retry_after="0.05"), TextReply("Hello from the fake"))
    requests_before = len(llm_server.chat_requests)

    run_id = await studio.run_workflow(build_workflow([llm_step()]))
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"ask": "Hello from the fake"}
    assert len(llm_server.chat_requests) - requests_before == 2
    deltas = "".join(str(event.data["text"]) for event in log.of_type(EventType.LLM_TOKEN_DELTA, run_id))
    assert deltas == "Hello from the fake"


async def test_llm_server_error_fails_run(
    make_engine: EngineFactory, llm_server: FakeOpenAIServer, store: Store
) -> None:
    studio, _ = await llm_engine(make_engine, llm_server)
    llm_server.script(*[server_error(500, retry_after="0.01")] * 4)

    error = await run_failing(studio, [llm_step()])

    assert error["step_key"] == "ask"
    assert "500" in str(error["message"])
    assert FAKE_KEY not in str(error)
    assert llm_server.pending_script == 0


async def test_llm_hang_times_out(make_engine: EngineFactory, llm_server: FakeOpenAIServer) -> None:
    studio, _ = await llm_engine(make_engine, llm_server)
    aborted_before = llm_server.aborted_count
    llm_server.script(Hang())

    error = await run_failing(studio, [llm_step(timeout_s=0.5)])

    assert error["kind"] == "timeout"
    assert "timed out after 0.5 s" in str(error["message"])
    assert llm_server.aborted.wait(5)
    assert llm_server.aborted_count > aborted_before
