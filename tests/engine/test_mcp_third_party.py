"""Tests of McpSessionPool against pinned third-party servers: server-everything, mcp-server-time, mcp-server-git."""

from __future__ import annotations

import datetime as dt

import pytest

from studio.engine.executors.mcp import McpServerSpec, McpSessionPool
from tests.engine.mcp_fixtures import everything_spec, git_spec, pool, time_spec

__all__ = ["everything_spec", "git_spec", "pool", "time_spec"]

pytestmark = pytest.mark.slow


async def test_everything_lists_and_echoes(pool: McpSessionPool, everything_spec: McpServerSpec) -> None:
    tools = {tool.name: tool for tool in await pool.list_tools(everything_spec)}

    result = await pool.call_tool(everything_spec, "echo", {"message": "hello from the studio"})

    assert {"echo", "trigger-long-running-operation", "get-structured-content"} <= set(tools)
    assert tools["echo"].input_schema["required"] == ["message"]
    assert result.value == "Echo: hello from the studio"
    assert result.content == [{"type": "text", "text": "Echo: hello from the studio"}]


async def test_everything_long_operation_progress(pool: McpSessionPool, everything_spec: McpServerSpec) -> None:
    updates: list[tuple[float, float | None]] = []

    result = await pool.call_tool(
        everything_spec,
        "trigger-long-running-operation",
        {"duration": 0.4, "steps": 4},
        timeout_s=20,
        on_progress=lambda progress, total, message: updates.append((progress, total)),
    )

    assert isinstance(result.value, str)
    assert "completed" in result.value
    assert updates == [(1.0, 4.0), (2.0, 4.0), (3.0, 4.0), (4.0, 4.0)]


async def test_everything_structured_and_image(pool: McpSessionPool, everything_spec: McpServerSpec) -> None:
    structured = await pool.call_tool(everything_spec, "get-structured-content", {"location": "Chicago"})
    image = await pool.call_tool(everything_spec, "get-tiny-image", {})

    assert isinstance(structured.value, dict)
    assert set(structured.value) == {"temperature", "conditions", "humidity"}
    assert isinstance(image.value, list)
    kinds = [block["type"] for block in image.value if isinstance(block, dict)]
    assert kinds == ["text", "image", "text"]
    described = image.value[1]
    assert isinstance(described, dict)
    assert described["mime_type"] == "image/png"
    assert "data" not in described


async def test_time_server_current_time(pool: McpSessionPool, time_spec: McpServerSpec) -> None:
    result = await pool.call_tool(time_spec, "get_current_time", {"timezone": "Asia/Tokyo"})

    assert isinstance(result.value, dict)
    assert result.value["timezone"] == "Asia/Tokyo"
    stamp = dt.datetime.fromisoformat(str(result.value["datetime"]))
    assert stamp.utcoffset() == dt.timedelta(hours=9)
    assert abs((stamp - dt.datetime.now(dt.UTC)).total_seconds()) < 120


async def test_git_server_status(pool: McpSessionPool, git_spec: McpServerSpec) -> None:
    repository = git_spec.args[-1]

    result = await pool.call_tool(git_spec, "git_status", {"repo_path": repository})

    assert isinstance(result.value, str)
    assert "No commits yet" in result.value or "Repository status" in result.value
