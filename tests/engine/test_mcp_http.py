"""Tests of McpSessionPool over streamable HTTP: the studio tool server, HTML pages, 404s and refused connections."""

from __future__ import annotations

import socket

import httpx2
import pytest

from studio.engine.executors import mcp_connection
from studio.engine.executors.mcp import (
    McpConnectError,
    McpServerCrashedError,
    McpServerSpec,
    McpSessionPool,
    McpToolError,
)
from tests.engine.mcp_fixtures import HttpToolServer, html_server, http_toolserver, pool, tools_root

__all__ = ["html_server", "http_toolserver", "pool", "tools_root"]


def http_spec(url: str, **options: object) -> McpServerSpec:
    options.setdefault("name", "http-tools")
    return McpServerSpec(transport="http", url=url, connect_timeout_s=10.0, **options)  # type: ignore[arg-type]


async def test_http_calls_reuse_session(pool: McpSessionPool, http_toolserver: HttpToolServer) -> None:
    spec = http_spec(http_toolserver.url)

    first = await pool.call_tool(spec, "file_append_line", {"path": "http.log", "line": "one"})
    second = await pool.call_tool(spec, "file_append_line", {"path": "http.log", "line": "two"})
    info = await pool.call_tool(spec, "server_info", {})

    assert first.value == {"path": "http.log", "line_count": 1}
    assert second.value == {"path": "http.log", "line_count": 2}
    assert isinstance(info.value, dict)
    assert info.value["pid"] == http_toolserver.process.pid


def test_url_written_after_port_listens(http_toolserver: HttpToolServer) -> None:
    # The test connects right after the fixture reads the URL line. Unless the port already listens,
    # a fast client is refused while uvicorn is still starting.
    port = int(http_toolserver.url.rsplit(":", 1)[1].split("/", 1)[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


async def test_http_progress_and_errors(pool: McpSessionPool, http_toolserver: HttpToolServer) -> None:
    spec = http_spec(http_toolserver.url, headers={"Authorization": "Bearer http-secret-1"})
    updates: list[float] = []

    result = await pool.call_tool(
        spec,
        "wait",
        {"seconds": 0.1, "steps": 2},
        on_progress=lambda progress, total, message: updates.append(progress),
    )
    with pytest.raises(McpToolError) as caught:
        await pool.call_tool(spec, "fail", {"message": "over http"})

    assert result.value == {"waited_s": 0.1, "steps": 2}
    assert updates == [1.0, 2.0]
    assert caught.value.tool_message == "over http"
    assert "http-secret-1" not in caught.value.message


async def test_http_server_crash_reported(pool: McpSessionPool, http_toolserver: HttpToolServer) -> None:
    spec = http_spec(http_toolserver.url)
    await pool.call_tool(spec, "server_info", {})

    with pytest.raises(McpServerCrashedError) as caught:
        await pool.call_tool(spec, "crash", {})

    assert "tool 'crash'" in caught.value.message
    assert "next call starts a new session" in caught.value.message


async def test_html_page_is_connect_error(pool: McpSessionPool, html_server: str) -> None:
    spec = http_spec(f"{html_server}/", headers={"Authorization": "Bearer html-secret-2"})

    with pytest.raises(McpConnectError) as caught:
        await pool.call_tool(spec, "echo", {})

    assert "did not respond as an MCP server" in caught.value.message
    assert "text/html" in caught.value.message
    assert "/mcp" in caught.value.message
    assert "html-secret-2" not in caught.value.message


async def test_not_found_is_connect_error(pool: McpSessionPool, html_server: str) -> None:
    spec = http_spec(f"{html_server}/missing/mcp")

    with pytest.raises(McpConnectError) as caught:
        await pool.list_tools(spec)

    assert "did not respond as an MCP server: it returned HTTP 404 with text/html (Not Found)" in caught.value.message


async def test_refused_connection_is_connect_error(pool: McpSessionPool) -> None:
    # Bind, then close, a loopback port so nothing listens on it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    spec = http_spec(f"http://127.0.0.1:{port}/mcp")

    with pytest.raises(McpConnectError) as caught:
        await pool.call_tool(spec, "echo", {})

    assert "could not connect" in caught.value.message
    assert f"127.0.0.1:{port}" in caught.value.message


async def test_silent_tool_within_call_limit(
    pool: McpSessionPool, http_toolserver: HttpToolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The idle read limit of the HTTP client shrinks to 1 s, so a 2.5 s tool without progress
    # outlasts it, as a long build outlasts the real limit.
    monkeypatch.setattr(mcp_connection, "HTTP_TIMEOUT", httpx2.Timeout(30.0, read=1.0))
    limited = http_spec(http_toolserver.url, call_timeout_s=20.0)
    unlimited = http_spec(http_toolserver.url, name="http-tools-unlimited")

    within_limit = await pool.call_tool(limited, "wait", {"seconds": 2.5, "steps": 1})
    without_limit = await pool.call_tool(unlimited, "wait", {"seconds": 2.5, "steps": 1})

    assert within_limit.value == {"waited_s": 2.5, "steps": 1}
    assert without_limit.value == {"waited_s": 2.5, "steps": 1}
