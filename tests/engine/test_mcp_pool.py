"""Tests of McpSessionPool against the studio tool server started over stdio."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from pathlib import Path

import pytest

from studio.engine.executors.mcp import (
    McpConnectError,
    McpServerCrashedError,
    McpServerSpec,
    McpSessionPool,
    McpTimeoutError,
    McpToolError,
    McpUnknownToolError,
)
from tests.engine.mcp_fixtures import pool, tools_root, tools_spec, toolserver_spec

__all__ = ["pool", "tools_root", "tools_spec"]


async def server_info(pool: McpSessionPool, spec: McpServerSpec) -> dict[str, object]:
    result = await pool.call_tool(spec, "server_info", {})
    assert isinstance(result.value, dict)
    return result.value


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_session_reused_across_calls(pool: McpSessionPool, tools_spec: McpServerSpec, tools_root: Path) -> None:
    first = await server_info(pool, tools_spec)
    counts = []
    for _ in range(5):
        result = await pool.call_tool(tools_spec, "file_append_line", {"path": "runs.log", "line": "ran"})
        assert isinstance(result.value, dict)
        counts.append(result.value["line_count"])
    last = await server_info(pool, tools_spec)

    assert counts == [1, 2, 3, 4, 5]
    assert first["pid"] == last["pid"]
    assert (tools_root / "runs.log").read_text() == "ran\n" * 5


async def test_equal_specs_share_one_session(pool: McpSessionPool, tools_root: Path) -> None:
    first = await server_info(pool, toolserver_spec(tools_root))
    second = await server_info(pool, toolserver_spec(tools_root))
    other = await server_info(pool, toolserver_spec(tools_root, name="other"))

    assert first["pid"] == second["pid"]
    assert other["pid"] != first["pid"]


async def test_concurrent_calls_share_session(pool: McpSessionPool, tools_spec: McpServerSpec) -> None:
    before = await server_info(pool, tools_spec)
    calls = 8
    started = [asyncio.Event() for _ in range(calls)]

    def progress_marker(event: asyncio.Event):  # type: ignore[no-untyped-def]
        return lambda progress, total, message: event.set()

    tasks = [
        asyncio.create_task(
            pool.call_tool(tools_spec, "wait", {"seconds": 60, "steps": 600}, on_progress=progress_marker(event))
        )
        for event in started
    ]
    await asyncio.gather(*(event.wait() for event in started))
    during = await server_info(pool, tools_spec)
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    after = await server_info(pool, tools_spec)

    assert during["pid"] == before["pid"]
    assert during["waits_running"] == calls
    assert all(isinstance(result, asyncio.CancelledError) for result in results)
    assert after["waits_cancelled"] == calls
    assert after["waits_running"] == 0


async def test_structured_result_value(pool: McpSessionPool, tools_spec: McpServerSpec) -> None:
    result = await pool.call_tool(tools_spec, "text_stats", {"text": "one two two\nthree", "top": 1})

    assert result.is_error is False
    assert result.value == {
        "characters": 17,
        "words": 4,
        "lines": 2,
        "paragraphs": 1,
        "top_words": [{"word": "two", "count": 2}],
    }
    assert result.content[0]["type"] == "text"  # type: ignore[index]


async def test_tool_error_raises_with_message(pool: McpSessionPool, tools_spec: McpServerSpec) -> None:
    with pytest.raises(McpToolError) as caught:
        await pool.call_tool(tools_spec, "fail", {"message": "the input file is empty"})

    assert caught.value.tool_message == "the input file is empty"
    assert "tool 'fail'" in caught.value.message
    assert "studio-tools" in caught.value.message


async def test_tool_error_returned_on_request(pool: McpSessionPool, tools_spec: McpServerSpec) -> None:
    result = await pool.call_tool(tools_spec, "fail", {"message": "bad"}, raise_on_error=False)

    assert result.is_error is True
    assert result.value == "bad"


async def test_invalid_arguments_are_tool_error(pool: McpSessionPool, tools_spec: McpServerSpec) -> None:
    with pytest.raises(McpToolError) as caught:
        await pool.call_tool(tools_spec, "split_text", {"text": "abc", "max_chars": 0})

    assert "max_chars" in caught.value.tool_message


async def test_progress_forwarded(pool: McpSessionPool, tools_spec: McpServerSpec) -> None:
    updates: list[tuple[float, float | None, str | None]] = []

    result = await pool.call_tool(
        tools_spec,
        "wait",
        {"seconds": 0.2, "steps": 4},
        on_progress=lambda progress, total, message: updates.append((progress, total, message)),
    )

    assert result.value == {"waited_s": 0.2, "steps": 4}
    assert updates == [(float(step), 4.0, f"step {step} of 4") for step in (1, 2, 3, 4)]


async def test_timeout_cancels_on_server(pool: McpSessionPool, tools_spec: McpServerSpec) -> None:
    with pytest.raises(McpTimeoutError) as caught:
        await pool.call_tool(tools_spec, "wait", {"seconds": 60}, timeout_s=0.5)
    info = await server_info(pool, tools_spec)

    assert caught.value.timeout_s == 0.5
    assert "0.5 s" in caught.value.message
    assert "raise the time limit of the call" in caught.value.message
    assert info["waits_cancelled"] == 1
    assert info["waits_running"] == 0


async def test_instance_timeout_names_instance(pool: McpSessionPool, tools_spec: McpServerSpec) -> None:
    limited = dataclasses.replace(tools_spec, name="slow tools", call_timeout_s=0.5)

    with pytest.raises(McpTimeoutError) as caught:
        await pool.call_tool(limited, "wait", {"seconds": 60})

    assert "did not finish within 0.5 s" in caught.value.message
    assert "raise the call timeout of MCP instance 'slow tools'" in caught.value.message
    assert "step's timeout" not in caught.value.message


async def test_caller_cancel_cancels_on_server(pool: McpSessionPool, tools_spec: McpServerSpec) -> None:
    first_progress = asyncio.Event()
    task = asyncio.create_task(
        pool.call_tool(tools_spec, "wait", {"seconds": 60, "steps": 600}, on_progress=lambda *_: first_progress.set())
    )
    await first_progress.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    info = await server_info(pool, tools_spec)

    assert info["waits_cancelled"] == 1
    assert info["waits_running"] == 0
    assert info["waits_completed"] == 0


async def test_crash_reported_then_restarted(pool: McpSessionPool, tools_spec: McpServerSpec) -> None:
    before = await server_info(pool, tools_spec)

    with pytest.raises(McpServerCrashedError) as caught:
        await pool.call_tool(tools_spec, "crash", {"message": "out of coffee", "exit_code": 7})
    after = await server_info(pool, tools_spec)

    assert "out of coffee" in caught.value.stderr_tail
    assert "out of coffee" in caught.value.message
    assert "tool 'crash'" in caught.value.message
    assert after["pid"] != before["pid"]
    assert not process_exists(int(str(before["pid"])))


async def test_stderr_tail_available(pool: McpSessionPool, tools_root: Path) -> None:
    spec = toolserver_spec(tools_root, extra_args=("--log-level", "INFO"))
    with pytest.raises(McpTimeoutError):
        await pool.call_tool(spec, "wait", {"seconds": 30}, timeout_s=0.3)
    # The server logs each cancelled wait at INFO level to its stderr.
    await pool.call_tool(spec, "server_info", {})

    assert "wait of 30.0 s was cancelled" in pool.stderr_tail(spec)


async def test_unknown_tool_suggests_names(pool: McpSessionPool, tools_spec: McpServerSpec) -> None:
    with pytest.raises(McpUnknownToolError) as caught:
        await pool.call_tool(tools_spec, "text_stat", {"text": "x"})

    assert caught.value.close_matches[0] == "text_stats"
    assert "did you mean 'text_stats'" in caught.value.message


async def test_list_tools_has_schemas(pool: McpSessionPool, tools_spec: McpServerSpec) -> None:
    tools = {tool.name: tool for tool in await pool.list_tools(tools_spec)}

    assert {"text_stats", "regex_extract", "file_append_line", "wait", "crash"} <= set(tools)
    assert tools["text_stats"].input_schema["required"] == ["text"]
    assert tools["text_stats"].output_schema is not None
    assert tools["wait"].description.startswith("Wait")


async def test_missing_command_error(pool: McpSessionPool) -> None:
    spec = McpServerSpec(transport="stdio", command="xyz-no-such-server")

    with pytest.raises(McpConnectError) as caught:
        await pool.call_tool(spec, "anything", {})

    assert caught.value.message == (
        "command 'xyz-no-such-server' was not found; check the MCP instance's command or install the server"
    )


async def test_exit_at_start_shows_stderr(pool: McpSessionPool) -> None:
    script = "import sys; sys.stderr.write('config file settings.toml is invalid\\n'); sys.exit(2)"
    spec = McpServerSpec(
        transport="stdio", command=sys.executable, args=("-c", script), env={"API_TOKEN": "s3cr3t-value"}
    )

    with pytest.raises(McpConnectError) as caught:
        await pool.call_tool(spec, "anything", {})

    assert "exited during startup" in caught.value.message
    assert "config file settings.toml is invalid" in caught.value.message
    assert "s3cr3t-value" not in caught.value.message


async def test_handshake_timeout(pool: McpSessionPool) -> None:
    spec = McpServerSpec(
        transport="stdio",
        command=sys.executable,
        args=("-c", "import sys; sys.stdin.read()"),
        connect_timeout_s=0.5,
        name="sleeper",
    )

    with pytest.raises(McpConnectError) as caught:
        await pool.call_tool(spec, "anything", {})

    assert "did not complete the MCP handshake within 0.5 s" in caught.value.message


async def test_close_stops_server(tools_spec: McpServerSpec) -> None:
    async with McpSessionPool() as session_pool:
        info = await server_info(session_pool, tools_spec)
        pid = int(str(info["pid"]))
        assert process_exists(pid)

    assert not process_exists(pid)
    with pytest.raises(RuntimeError, match="closed"):
        await session_pool.call_tool(tools_spec, "server_info", {})


async def test_file_tools_reject_escapes(pool: McpSessionPool, tools_spec: McpServerSpec, tools_root: Path) -> None:
    outside = tools_root.parent / "secret.txt"
    outside.write_text("TOP-SECRET-CONTENT")
    (tools_root / "link").symlink_to(outside)

    for path in ("../secret.txt", "link", str(outside), "sub/../../secret.txt"):
        with pytest.raises(McpToolError) as caught:
            await pool.call_tool(tools_spec, "file_read", {"path": path})
        assert "TOP-SECRET-CONTENT" not in caught.value.message
        assert "tools root" in caught.value.tool_message


def test_spec_key_and_repr_hide_secrets() -> None:
    spec = McpServerSpec(
        transport="http",
        url="http://user:pw-123@127.0.0.1:9/mcp?token=tok-456",
        headers={"Authorization": "Bearer hdr-789"},
    )
    other = McpServerSpec(transport="http", url="http://127.0.0.1:9/mcp", headers={"Authorization": "Bearer x"})
    text = f"{spec.key} {spec!r} {spec.display_name}"

    for secret in ("pw-123", "tok-456", "hdr-789"):
        assert secret not in text
    assert spec.display_name == "http://127.0.0.1:9/mcp"
    assert spec.key != other.key


def test_spec_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="needs a command"):
        McpServerSpec(transport="stdio")
    with pytest.raises(ValueError, match="http:// or https://"):
        McpServerSpec(transport="http", url="ftp://example/mcp")
    with pytest.raises(ValueError, match="not supported"):
        McpServerSpec(transport="websocket", url="ws://x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="applies to HTTP servers only"):
        McpServerSpec(transport="stdio", command="server", auth_connection_id="c1")


async def test_legacy_mode_progress_and_cancel(tools_spec: McpServerSpec) -> None:
    # mode="legacy" forces the 2025-11-25 handshake, the protocol server-everything speaks.
    async with McpSessionPool(mode="legacy") as legacy_pool:
        updates: list[float] = []
        result = await legacy_pool.call_tool(
            tools_spec, "wait", {"seconds": 0.1, "steps": 2}, on_progress=lambda progress, *_: updates.append(progress)
        )
        with pytest.raises(McpTimeoutError):
            await legacy_pool.call_tool(tools_spec, "wait", {"seconds": 60}, timeout_s=0.3)
        info = await server_info(legacy_pool, tools_spec)

    assert result.value == {"waited_s": 0.1, "steps": 2}
    assert updates == [1.0, 2.0]
    assert info["waits_cancelled"] == 1
    assert info["waits_running"] == 0
