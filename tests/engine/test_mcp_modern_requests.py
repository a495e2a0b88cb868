"""Sampling and elicitation on the 2026-07-28 protocol, where the client serves them between call rounds."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from studio.engine import Engine, EventType, ExecutorServices
from studio.mcp.catalog import add_entry
from studio.mcp.instances import create_instance
from studio.store import Store
from tests.conftest import EventLog, build_workflow, store
from tests.engine.mcp_everything import FAKE_KEY, SAMPLING_MODEL, llm_server
from tests.fakes.openai_server import FakeOpenAIServer, TextReply

__all__ = ["llm_server", "store"]

SCRIPTED_SERVER = str(Path(__file__).resolve().parent / "mcp_scripts" / "scripted_server.py")


@pytest_asyncio.fixture
async def studio(store: Store, llm_server: FakeOpenAIServer) -> AsyncIterator[tuple[Engine, EventLog, str]]:
    """An engine with an instance of the scripted server (modern protocol) that may sample."""
    environ = {
        **os.environ,
        "OPENAI_BASE_URL": llm_server.base_url,
        "OPENAI_API_KEY": FAKE_KEY,
        "STUDIO_SAMPLING_MODEL": SAMPLING_MODEL,
    }
    entry = add_entry(store, "scripted", "stdio", command=sys.executable, args=[SCRIPTED_SERVER])
    instance = create_instance(store, entry, allow_sampling=True)
    engine = Engine(store, services=ExecutorServices(store, environ=environ))
    log = EventLog()
    engine.add_listener(log)
    try:
        yield engine, log, instance.id
    finally:
        await engine.aclose()


def step(step_id: str, tool: str, instance_id: str, **arguments: object) -> dict[str, object]:
    return {
        "id": step_id,
        "type": "mcp_call",
        "config": {"instance_id": instance_id, "tool": tool, "arguments": arguments},
    }


async def test_parallel_elicitations_reach_their_steps(studio: tuple[Engine, EventLog, str], store: Store) -> None:
    engine, log, instance_id = studio
    run_id = await engine.run_workflow(
        build_workflow([step("a", "greet", instance_id), step("b", "greet", instance_id)])
    )

    waiting = [
        await log.wait_for(
            lambda event, key=key: event.type == EventType.STEP_WAITING and event.step_key == key, timeout_s=60
        )
        for key in ("a", "b")
    ]
    # The run settles as waiting only once both steps wait on their tasks, so each decision finds its waiter.
    settled = await engine.wait(run_id)
    assert settled.status == "waiting"
    tasks = {task.step_id: task for task in store.list_tasks(run_id=run_id)}
    await engine.resolve_task(tasks["a"].id, "accept", {"name": "Ada"})
    await engine.resolve_task(tasks["b"].id, "accept", {"name": "Bob", "age": 41})
    summary = await engine.wait(run_id)

    assert [event.data["task_id"] for event in waiting] == [tasks["a"].id, tasks["b"].id]
    assert tasks["a"].step_key.startswith("a#elicitation-")
    assert tasks["b"].step_key.startswith("b#elicitation-")
    assert summary.status == "completed", summary.error
    assert summary.result == {"a": {"result": "hello Ada, 30"}, "b": {"result": "hello Bob, 41"}}


async def test_sampling_between_rounds(
    studio: tuple[Engine, EventLog, str], store: Store, llm_server: FakeOpenAIServer
) -> None:
    engine, _, instance_id = studio
    llm_server.script(TextReply("old pond, a frog jumps in", usage=(9, 6)))

    run_id = await engine.run_workflow(build_workflow([step("poem", "haiku", instance_id, topic="frogs")]))
    summary = await engine.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"poem": {"result": "old pond, a frog jumps in"}}
    request = llm_server.chat_requests[0].json
    assert request["messages"][0] == {"role": "system", "content": "You write haiku."}
    assert request["messages"][-1]["content"] == "A haiku on frogs"
    tokens = [row for row in store.usage(run_id) if row["kind"] == "llm_completion_tokens"]
    assert [row["quantity"] for row in tokens] == [6]
    assert tokens[0]["step_id"] == "poem"
