"""Tests of the tool server's command line: the tool list, a bad --root, and the root from the environment."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from studio.engine.executors.mcp import McpServerSpec, McpSessionPool
from studio.toolserver.server import main
from tests.engine.mcp_fixtures import pool, running_http_toolserver

__all__ = ["pool"]

EXPECTED_TOOLS = {
    "text_stats",
    "split_text",
    "regex_extract",
    "json_query",
    "csv_parse",
    "render_markdown_table",
    "slugify",
    "current_time",
    "files_list",
    "file_read",
    "file_write",
    "file_append_line",
    "wait",
    "fail",
    "crash",
    "server_info",
}


def test_bad_root_exits_with_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing"

    with pytest.raises(SystemExit) as caught:
        main(["--root", str(missing)])

    assert caught.value.code == 2
    assert f"the tools root '{missing}' is not an existing directory" in capsys.readouterr().err


async def test_root_from_environment(pool: McpSessionPool, tmp_path: Path) -> None:
    spec = McpServerSpec(
        transport="stdio",
        command=sys.executable,
        args=("-m", "studio.toolserver"),
        env={"STUDIO_TOOLS_ROOT": str(tmp_path)},
    )

    tools = {tool.name: tool for tool in await pool.list_tools(spec)}
    info = await pool.call_tool(spec, "server_info", {})
    appended = await pool.call_tool(spec, "file_append_line", {"path": "env.log", "line": "ok"})

    assert set(tools) == EXPECTED_TOOLS
    missing_output_schema = {name for name, tool in tools.items() if tool.output_schema is None}
    assert missing_output_schema == {"fail"}
    assert isinstance(info.value, dict)
    assert info.value["root"] == os.path.realpath(tmp_path)
    assert appended.value == {"path": "env.log", "line_count": 1}


def test_port_in_use_exits_with_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]

        with pytest.raises(SystemExit) as caught:
            main(["--http", "--port", str(port), "--root", str(tmp_path)])

    assert caught.value.code == 2
    assert f"cannot listen on 127.0.0.1 port {port}" in capsys.readouterr().err


async def test_ipv6_host_serves_bracketed_url(pool: McpSessionPool, tmp_path: Path) -> None:
    async with running_http_toolserver(tmp_path, host="::1") as server:
        spec = McpServerSpec(transport="http", url=server.url, name="ipv6-tools", connect_timeout_s=10.0)
        info = await pool.call_tool(spec, "server_info", {})

    assert server.url.startswith("http://[::1]:")
    assert isinstance(info.value, dict)
    assert info.value["pid"] == server.process.pid
