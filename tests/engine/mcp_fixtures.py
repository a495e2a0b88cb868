"""Fixtures for the MCP tests: the studio tool server over stdio and HTTP, third-party servers, an HTML server."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from studio.engine.executors.mcp import McpServerSpec, McpSessionPool
from studio.toolserver.server import build_server

REPO_ROOT = Path(__file__).resolve().parents[2]
EVERYTHING_ENTRY = REPO_ROOT / "tests/servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
DEPS = REPO_ROOT / ".deps"
MISSING_DEPS_HINT = "run tools/bootstrap-test-deps.sh (run-tests does it) to install the pinned MCP test servers"


def toolserver_spec(root: Path, *, name: str = "studio-tools", extra_args: tuple[str, ...] = ()) -> McpServerSpec:
    """Spec that starts the studio tool server over stdio with its file tools confined to root."""
    return McpServerSpec(
        transport="stdio",
        command=sys.executable,
        args=("-m", "studio.toolserver", "--root", str(root), *extra_args),
        name=name,
        connect_timeout_s=20.0,
    )


@pytest.fixture
def tools_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture
def tools_spec(tools_root: Path) -> McpServerSpec:
    return toolserver_spec(tools_root)


@pytest.fixture
async def pool() -> AsyncIterator[McpSessionPool]:
    async with McpSessionPool() as session_pool:
        yield session_pool


@dataclass
class HttpToolServer:
    url: str
    process: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def running_http_toolserver(root: Path, host: str = "127.0.0.1") -> AsyncIterator[HttpToolServer]:
    """Start the studio tool server on streamable HTTP at a free port of ``host``; stop it on exit."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "studio.toolserver",
        "--http",
        "--host",
        host,
        "--port",
        "0",
        "--root",
        str(root),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            line = await process.stdout.readline()
        url = line.decode().strip()
        assert url.startswith("http://"), f"unexpected first line from the HTTP tool server: {line!r}"
        yield HttpToolServer(url=url, process=process)
    finally:
        if process.returncode is None:
            process.terminate()
        with contextlib.suppress(ProcessLookupError):
            await process.wait()


@pytest.fixture
async def http_toolserver(tools_root: Path) -> AsyncIterator[HttpToolServer]:
    """The studio tool server on streamable HTTP at a free loopback port."""
    async with running_http_toolserver(tools_root) as server:
        assert server.url.startswith("http://127.0.0.1:")
        yield server


class _HtmlHandler(http.server.BaseHTTPRequestHandler):
    """Serves an HTML page for every request, or a 404 under /missing, like a web server at a wrong URL."""

    def _reply(self) -> None:
        status = 404 if self.path.startswith("/missing") else 200
        body = b"<!doctype html><html><body><h1>Welcome</h1></body></html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _reply
    do_POST = _reply
    do_DELETE = _reply

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def html_server() -> Iterator[str]:
    """Base URL of a loopback HTTP server that serves HTML instead of MCP."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _require(path: Path) -> None:
    if not path.exists():
        pytest.fail(f"{path} is missing; {MISSING_DEPS_HINT}")


@pytest.fixture
def everything_spec() -> McpServerSpec:
    """@modelcontextprotocol/server-everything over stdio, run by the node on PATH."""
    _require(EVERYTHING_ENTRY)
    return McpServerSpec(transport="stdio", command="node", args=(str(EVERYTHING_ENTRY), "stdio"), name="everything")


@pytest.fixture
def time_spec() -> McpServerSpec:
    """mcp-server-time from its own virtual environment."""
    command = DEPS / "mcp-server-time/bin/mcp-server-time"
    _require(command)
    return McpServerSpec(transport="stdio", command=str(command), args=("--local-timezone", "UTC"), name="time")


@pytest.fixture
def git_spec(tmp_path: Path) -> McpServerSpec:
    """mcp-server-git from its own virtual environment, on an empty repository it may not leave."""
    command = DEPS / "mcp-server-git/bin/mcp-server-git"
    _require(command)
    repository = tmp_path / "repo"
    repository.mkdir()
    env = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
    subprocess.run(["git", "init", "-q", str(repository)], check=True, env={**os.environ, **env})
    return McpServerSpec(
        transport="stdio", command=str(command), args=("--repository", str(repository)), env=env, name="git"
    )


@pytest.fixture
async def inprocess_tools(tools_root: Path) -> AsyncIterator[Client]:
    """An SDK client connected in-process to the studio tool server, with its file tools confined to tools_root.

    pytest-asyncio runs a fixture's setup and teardown in different tasks, but a Client must be
    entered and exited in one task, so an owner task keeps it open.
    """
    entered: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
    release = asyncio.Event()

    async def own() -> None:
        async with Client(build_server(str(tools_root))) as client:
            entered.set_result(client)
            await release.wait()

    owner = asyncio.create_task(own())
    await asyncio.wait({owner, entered}, return_when=asyncio.FIRST_COMPLETED)
    if owner.done():
        owner.result()  # raises the error that stopped the client from entering
    try:
        yield entered.result()
    finally:
        release.set()
        await owner


async def call_ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call a tool in-process and return its structured content, failing the test on an error result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} returned an error: {result.content}"
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    """Call a tool in-process that must fail and return the error text."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} succeeded unexpectedly: {result.structured_content}"
    return "\n".join(getattr(block, "text", "") for block in result.content)
