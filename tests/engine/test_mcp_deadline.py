"""The call time limit while a person or an LLM serves a server request: the clock stops, then runs on."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from studio.engine.executors.mcp import (
    CallScope,
    ElicitationAnswer,
    ElicitationRequest,
    McpServerSpec,
    McpSessionPool,
    McpTimeoutError,
)
from tests.engine.mcp_fixtures import EVERYTHING_ENTRY, pool

__all__ = ["pool"]

pytestmark = pytest.mark.slow

SCRIPTED_SERVER = str(Path(__file__).resolve().parent / "mcp_scripts" / "scripted_server.py")
SLOW_ANSWER_S = 1.2
"""How long the simulated person takes, more than twice the call's time limit."""


async def slow_person(request: ElicitationRequest) -> ElicitationAnswer:
    await asyncio.sleep(SLOW_ANSWER_S)
    return ElicitationAnswer(action="accept", content={"name": "Ada"})


@pytest.mark.parametrize("server", ["scripted", "everything"])
async def test_person_time_not_counted(pool: McpSessionPool, server: str) -> None:
    if server == "scripted":
        spec = McpServerSpec(
            transport="stdio", command=sys.executable, args=(SCRIPTED_SERVER,), name=server, call_timeout_s=0.5
        )
        tool = "greet"
    else:
        spec = McpServerSpec(
            transport="stdio", command="node", args=(str(EVERYTHING_ENTRY), "stdio"), name=server, call_timeout_s=0.5
        )
        tool = "trigger-elicitation-request"
    await pool.connection(spec)
    loop = asyncio.get_running_loop()
    started = loop.time()

    result = await pool.call_tool(spec, tool, {}, scope=CallScope(label="test", elicitor=slow_person))

    assert loop.time() - started >= SLOW_ANSWER_S
    assert "Ada" in str(result.value)


async def test_limit_applies_without_requests(pool: McpSessionPool) -> None:
    spec = McpServerSpec(
        transport="stdio", command="node", args=(str(EVERYTHING_ENTRY), "stdio"), name="everything", call_timeout_s=0.5
    )

    with pytest.raises(McpTimeoutError) as caught:
        await pool.call_tool(spec, "trigger-long-running-operation", {"duration": 3, "steps": 3})

    assert "did not finish within 0.5 s" in caught.value.message
