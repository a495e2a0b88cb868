"""server-everything through the engine: every tool, sampling, elicitation tasks, roots and session reuse."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from studio.engine import EngineError, EventType
from studio.engine.executors.mcp import (
    CallScope,
    ElicitationAnswer,
    ElicitationRequest,
    McpServerSpec,
    McpTimeoutError,
    McpToolError,
    SamplingRequest,
    SamplingResponse,
)
from tests.conftest import build_workflow, store
from tests.engine.mcp_everything import (
    SAMPLING_MODEL,
    Studio,
    everything_processes,
    everything_step,
    llm_server,
    studio,
)
from tests.engine.mcp_fixtures import EVERYTHING_ENTRY
from tests.fakes.openai_server import FakeOpenAIServer, TextReply

__all__ = ["llm_server", "store", "studio"]

pytestmark = pytest.mark.slow


def everything_spec(**options: Any) -> McpServerSpec:
    options.setdefault("name", "everything")
    return McpServerSpec(transport="stdio", command="node", args=(str(EVERYTHING_ENTRY), "stdio"), **options)


async def run_steps(studio: Studio, steps: list[dict[str, Any]], edges: list[tuple[str, str]] | None = None) -> str:
    return await studio.engine.run_workflow(build_workflow(steps, edges))


async def pending_elicitation(studio: Studio, run_id: str) -> Any:
    """Return the elicitation task of the run once the run waits for it."""
    await studio.log.wait_for(
        lambda event: (
            event.run_id == run_id and event.type == EventType.STEP_WAITING and event.data.get("kind") == "elicitation"
        ),
        timeout_s=60,
    )
    # The run settles as waiting only once the step waits on the task, so a decision finds its waiter.
    assert (await studio.engine.wait(run_id)).status == "waiting"
    tasks = studio.store.list_tasks(run_id=run_id)
    assert len(tasks) == 1
    return tasks[0]


# -- every tool -----------------------------------------------------------------------------------


async def test_every_tool_answers(studio: Studio, llm_server: FakeOpenAIServer, tmp_path: Path) -> None:
    llm_server.set_default(TextReply("a sampled reply"))
    spec = everything_spec(allow_sampling=True)
    pool = studio.services.mcp

    async def elicitor(request: ElicitationRequest) -> ElicitationAnswer:
        return ElicitationAnswer(action="accept", content={"name": "Ada"})

    async def sampler(request: SamplingRequest) -> SamplingResponse:
        return await studio.services.sampling(studio.services, request)

    def scope() -> CallScope:
        return CallScope(label="test", allow_sampling=True, sampler=sampler, elicitor=elicitor)

    data_uri = "data:text/plain;base64," + base64.b64encode(b"hello gzip").decode()
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "echo": ({"message": "hi"}, "Echo: hi"),
        "get-annotated-message": ({"messageType": "success"}, "Operation completed successfully"),
        "get-env": ({}, "PATH"),
        "get-resource-links": ({"count": 2}, "demo://resource/dynamic"),
        "get-resource-reference": ({"resourceType": "Text", "resourceId": 2}, "demo://resource/dynamic/text/2"),
        "get-structured-content": ({"location": "New York"}, "temperature"),
        "get-sum": ({"a": 2, "b": 40}, "42"),
        "get-tiny-image": ({}, "image/png"),
        "gzip-file-as-resource": ({"name": "hello.txt.gz", "data": data_uri}, "hello.txt.gz"),
        "toggle-simulated-logging": ({}, "simulated"),
        "toggle-subscriber-updates": ({}, "resource updated"),
        "trigger-long-running-operation": ({"duration": 0.2, "steps": 2}, "Long running operation completed"),
        "get-roots-list": ({}, tmp_path.resolve().as_uri()),
        "trigger-elicitation-request": ({}, "Ada"),
        "trigger-sampling-request": ({"prompt": "say hi", "maxTokens": 20}, "a sampled reply"),
    }
    listed = {tool.name for tool in await pool.list_tools(spec)}
    for tool, (arguments, expected) in cases.items():
        result = await pool.call_tool(spec, tool, arguments, scope=scope(), timeout_s=30)
        assert expected in str(result.value), f"{tool}: {result.value}"

    # The tools left need features this client does not offer; each fails with the server's reason.
    with pytest.raises(McpToolError) as url_mode:
        await pool.call_tool(spec, "trigger-url-elicitation", {"url": "https://example.invalid/"}, scope=scope())
    with pytest.raises(McpToolError) as task_mode:
        await pool.call_tool(spec, "simulate-research-query", {"topic": "x"}, scope=scope())

    assert listed >= set(cases) | {"trigger-url-elicitation", "simulate-research-query"}
    assert listed - set(cases) == {"trigger-url-elicitation", "simulate-research-query"}
    assert "URL-mode elicitation is not supported" in url_mode.value.message
    assert "task augmentation" in task_mode.value.message
    assert len(llm_server.chat_requests) == 1
    assert llm_server.chat_requests[0].json["model"] == SAMPLING_MODEL


async def test_catalog_facts(studio: Studio) -> None:
    connection = await studio.services.mcp.connection(everything_spec())

    resources = await connection.list_resources()
    prompts = await connection.list_prompts()

    assert connection.server_info is not None
    assert connection.server_info.name == "mcp-servers/everything"
    assert connection.protocol_version == "2025-11-25"
    assert {"tools", "resources", "prompts"} <= set(connection.capabilities)
    assert any(resource.uri.startswith("demo://resource/static") for resource in resources)
    assert {"simple-prompt", "args-prompt"} <= {prompt.name for prompt in prompts}
    args_prompt = next(prompt for prompt in prompts if prompt.name == "args-prompt")
    assert args_prompt.arguments[0].name == "city"
    assert args_prompt.arguments[0].required is True


# -- timeouts and progress ------------------------------------------------------------------------


async def test_progress_extends_call_timeout(studio: Studio) -> None:
    arguments = {"duration": 1.5, "steps": 6}
    fixed = everything_spec(call_timeout_s=0.8)
    extended = everything_spec(call_timeout_s=0.8, reset_timeout_on_progress=True, name="extended")
    capped = everything_spec(call_timeout_s=0.8, reset_timeout_on_progress=True, max_call_timeout_s=1.0, name="capped")
    pool = studio.services.mcp
    updates: list[float] = []

    with pytest.raises(McpTimeoutError) as plain_timeout:
        await pool.call_tool(fixed, "trigger-long-running-operation", arguments)
    result = await pool.call_tool(
        extended, "trigger-long-running-operation", arguments, on_progress=lambda done, *_: updates.append(done)
    )
    with pytest.raises(McpTimeoutError) as cap_timeout:
        await pool.call_tool(capped, "trigger-long-running-operation", arguments)

    assert "did not finish within 0.8 s" in plain_timeout.value.message
    assert "completed" in str(result.value)
    assert updates == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert "hard limit of 1 s" in cap_timeout.value.message
    assert "max_call_timeout_s" in cap_timeout.value.message


async def test_long_operation_step_reports_progress(studio: Studio) -> None:
    step = everything_step(
        "long", "trigger-long-running-operation", {"duration": 0.3, "steps": 3}, studio.plain_instance
    )
    run_id = await run_steps(studio, [step])
    summary = await studio.engine.wait(run_id)

    assert summary.status == "completed", summary.error
    progress = [event.data["progress"] for event in studio.log.of_type(EventType.STEP_PROGRESS, run_id)]
    assert progress == [1.0, 2.0, 3.0]


# -- sampling -------------------------------------------------------------------------------------


async def test_sampling_served_and_metered(studio: Studio, llm_server: FakeOpenAIServer) -> None:
    llm_server.script(TextReply("the sampled answer", usage=(11, 3)))
    step = everything_step("ask", "trigger-sampling-request", {"prompt": "what is 2+2?"}, studio.sampling_instance)

    run_id = await run_steps(studio, [step])
    summary = await studio.engine.wait(run_id)

    assert summary.status == "completed", summary.error
    assert "the sampled answer" in str(summary.result)
    request = llm_server.chat_requests[0].json
    assert request["model"] == SAMPLING_MODEL
    assert "what is 2+2?" in request["messages"][-1]["content"]
    assert request["messages"][0] == {"role": "system", "content": "You are a helpful test server."}
    usage = [row for row in studio.store.usage(run_id) if (row.get("detail") or {}).get("source") == "mcp_sampling"]
    kinds = {row["kind"]: row for row in usage}
    assert set(kinds) == {"mcp_sampling", "llm_prompt_tokens", "llm_completion_tokens"}
    assert kinds["llm_prompt_tokens"]["quantity"] == 11
    assert kinds["llm_completion_tokens"]["quantity"] == 3
    assert all(row["step_id"] == "ask" for row in usage)


async def test_sampling_rejected_when_not_allowed(studio: Studio, llm_server: FakeOpenAIServer) -> None:
    step = everything_step("ask", "trigger-sampling-request", {"prompt": "hello"}, studio.plain_instance)

    run_id = await run_steps(studio, [step])
    summary = await studio.engine.wait(run_id)

    assert summary.status == "failed"
    message = str(summary.error)
    assert "sampling is not allowed for MCP server 'everything-plain'" in message
    assert "allow_sampling" in message
    assert llm_server.chat_requests == []


# -- elicitation ----------------------------------------------------------------------------------


async def test_elicitation_accepted_through_store(studio: Studio) -> None:
    step = everything_step("form", "trigger-elicitation-request", {}, studio.plain_instance)
    run_id = await run_steps(studio, [step])

    task = await pending_elicitation(studio, run_id)
    fields = {field["name"]: field for field in task.fields}
    with pytest.raises(EngineError, match="field 'name' is required"):
        await studio.engine.resolve_task(task.id, "accept", {})
    with pytest.raises(EngineError, match="field 'integer' must be at most 100"):
        await studio.engine.resolve_task(task.id, "accept", {"name": "Ada", "integer": 500})
    with pytest.raises(EngineError, match="use 'accept', 'decline' or 'cancel'"):
        await studio.engine.resolve_task(task.id, "maybe", {})
    await studio.engine.resolve_task(
        task.id, "accept", {"name": "Ada Lovelace", "integer": "7", "untitledMultipleSelectEnum": '["Piano"]'}
    )
    summary = await studio.engine.wait(run_id)

    assert task.context["kind"] == "elicitation"
    assert task.instructions == "Please provide inputs for the following fields:"
    assert fields["name"]["required"] is True
    assert fields["check"]["type"] == "boolean"
    assert fields["integer"]["type"] == "number"
    assert fields["integer"]["default"] == 42
    assert fields["untitledSingleSelectEnum"]["choices"][:2] == ["Monica", "Rachel"]
    assert fields["titledSingleSelectEnum"]["choices"] == ["hero-1", "hero-2", "hero-3"]
    assert fields["untitledMultipleSelectEnum"]["type"] == "json"
    assert summary.status == "completed", summary.error
    text = str(summary.result)
    assert "Ada Lovelace" in text
    assert '"integer": 7' in text
    assert "Piano" in text
    assert studio.store.get_task(task.id).status == "accepted"


@pytest.mark.parametrize(
    ("decision", "status", "reply"), [("decline", "declined", "declined"), ("cancel", "cancelled", "cancel")]
)
async def test_elicitation_declined_or_cancelled(studio: Studio, decision: str, status: str, reply: str) -> None:
    step = everything_step("form", "trigger-elicitation-request", {}, studio.plain_instance)
    run_id = await run_steps(studio, [step])

    task = await pending_elicitation(studio, run_id)
    await studio.engine.resolve_task(task.id, decision, {})
    summary = await studio.engine.wait(run_id)

    assert summary.status == "completed", summary.error
    assert reply in str(summary.result).lower()
    assert studio.store.get_task(task.id).status == status


async def test_stop_cancels_waiting_call(studio: Studio) -> None:
    step = everything_step("form", "trigger-elicitation-request", {}, studio.plain_instance)
    run_id = await run_steps(studio, [step])
    task = await pending_elicitation(studio, run_id)
    pids = everything_processes()

    await studio.engine.stop(run_id)
    after = await studio.services.mcp.call_tool(everything_spec(), "echo", {"message": "still here"})

    assert studio.store.get_run(run_id).status == "stopped"
    assert studio.store.get_task(task.id).status == "cancelled"
    assert studio.store.step_runs(run_id)["form"].status == "cancelled"
    assert after.value == "Echo: still here"
    assert len(pids) == 1


# -- session reuse and restarts ---------------------------------------------------------------------


async def test_one_process_for_steps_and_runs(studio: Studio) -> None:
    instance = studio.plain_instance
    steps = [everything_step(f"echo{i}", "echo", {"message": f"m{i}"}, instance) for i in range(4)]
    edges = [(f"echo{i}", f"echo{i + 1}") for i in range(3)]
    seen: list[list[int]] = []

    for _ in range(2):
        run_id = await run_steps(studio, steps, edges)
        summary = await studio.engine.wait(run_id)
        assert summary.status == "completed", summary.error
        seen.append(everything_processes())

    assert len(seen[0]) == 1
    assert seen[0] == seen[1]


async def test_restart_after_kill_between_steps(studio: Studio) -> None:
    instance = studio.plain_instance
    first = await run_steps(studio, [everything_step("echo", "echo", {"message": "before"}, instance)])
    assert (await studio.engine.wait(first)).status == "completed"
    [old_pid] = everything_processes()
    connection = await studio.services.mcp.connection(
        await asyncio.to_thread(studio.services.mcp_server, {"instance_id": instance})
    )

    os.kill(old_pid, signal.SIGKILL)
    assert connection.stderr is not None
    assert await connection.stderr.wait_closed(10)
    second = await run_steps(studio, [everything_step("echo", "echo", {"message": "after"}, instance)])
    summary = await studio.engine.wait(second)

    assert summary.status == "completed", summary.error
    assert summary.result == {"echo": "Echo: after"}
    [new_pid] = everything_processes()
    assert new_pid != old_pid


async def test_restart_right_after_kill(studio: Studio) -> None:
    # Without waiting for the pool to notice the exit, the next call either finds the session dead
    # or loses its request to the dead process; echo is idempotent, so both paths end in a restart.
    instance = studio.plain_instance
    pids: list[int] = []
    for round_number in range(3):
        run_id = await run_steps(
            studio, [everything_step("echo", "echo", {"message": f"round {round_number}"}, instance)]
        )
        summary = await studio.engine.wait(run_id)
        assert summary.status == "completed", summary.error
        assert summary.result == {"echo": f"Echo: round {round_number}"}
        [pid] = everything_processes()
        pids.append(pid)
        os.kill(pid, signal.SIGKILL)

    assert len(set(pids)) == 3
