"""The live stderr feed of an MCP server connection: listeners, the async line iterator, and restarts."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from studio.engine.executors.mcp import McpServerCrashedError, McpServerSpec, McpSessionPool
from tests.engine.mcp_fixtures import pool

__all__ = ["pool"]

SCRIPTED_SERVER = str(Path(__file__).resolve().parent / "mcp_scripts" / "scripted_server.py")


def scripted_spec() -> McpServerSpec:
    return McpServerSpec(transport="stdio", command=sys.executable, args=(SCRIPTED_SERVER,), name="scripted")


async def test_listener_gets_lines_in_order(pool: McpSessionPool) -> None:
    connection = await pool.connection(scripted_spec())
    lines: list[str] = []
    third = asyncio.Event()

    def on_line(line: str) -> None:
        lines.append(line)
        if len(lines) == 3:
            third.set()

    remove = connection.add_stderr_listener(on_line)
    await pool.call_tool(scripted_spec(), "log_stderr", {"lines": ["one", "two", "three"]})
    await asyncio.wait_for(third.wait(), 10)
    remove()
    await pool.call_tool(scripted_spec(), "log_stderr", {"lines": ["after removal"]})
    # Lines reach listeners in order, so once the marker reaches a new listener the line before it was delivered.
    later: asyncio.Queue[str] = asyncio.Queue()
    connection.add_stderr_listener(later.put_nowait)
    await pool.call_tool(scripted_spec(), "log_stderr", {"lines": ["marker"]})
    await asyncio.wait_for(later.get(), 10)

    assert lines == ["one", "two", "three"]
    assert "after removal" in connection.stderr_tail()


async def test_line_iterator_ends_with_session(pool: McpSessionPool) -> None:
    connection = await pool.connection(scripted_spec())
    received: list[str] = []
    lines = connection.stderr_lines()

    async def read() -> None:
        async for line in lines:
            received.append(line)

    reader = asyncio.create_task(read())
    await pool.call_tool(scripted_spec(), "log_stderr", {"lines": ["alpha", "beta"]})
    with contextlib.suppress(McpServerCrashedError):
        await pool.call_tool(scripted_spec(), "crash_always", {"note": "bye"})
    await asyncio.wait_for(reader, 10)

    # The iterator ends with the first server, so the restarted server's line is not in it.
    assert len(received) == 3
    assert received[:2] == ["alpha", "beta"]
    assert received[2].startswith("fatal: bye")
