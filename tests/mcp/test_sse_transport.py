"""MCP instances on the legacy HTTP+SSE transport, reached from the instance page's session and from an engine run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from studio.engine import Engine, ExecutorServices
from studio.engine.executors.mcp_errors import McpConnectError
from studio.engine.executors.mcp_model import McpServerSpec
from studio.mcp.catalog import add_entry
from studio.mcp.instances import create_instance
from studio.mcp.resolve import spec_for_instance
from studio.mcp.session import InstanceSession
from studio.store import Store
from tests.conftest import build_workflow
from tests.engine.mcp_fixtures import html_server

__all__ = ["html_server"]

ECHO_SERVER = Path(__file__).with_name("echo_server.py")

# The async tests share the module's event loop, as the engine fixtures of tests.conftest need.
module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def sse_url() -> Iterator[str]:
    """URL of the echo server's event stream on the legacy SSE transport (the mcp SDK's own SSE server)."""
    process = subprocess.Popen([sys.executable, str(ECHO_SERVER), "--sse"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), f"unexpected first line from the echo server: {url!r}"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest_asyncio.fixture(loop_scope="module")
async def services(store: Store) -> AsyncIterator[ExecutorServices]:
    created = ExecutorServices(store, environ={})
    yield created
    await created.aclose()


def sse_instance(store: Store, url: str) -> str:
    entry = add_entry(store, "sse echo", "sse", url=url)
    return create_instance(store, entry, name="sse echo").id


def test_spec_keeps_sse_transport(store: Store, sse_url: str) -> None:
    sse_instance(store, sse_url)

    spec = spec_for_instance(store, "sse echo")

    assert spec.transport == "sse"
    assert spec.url == sse_url


def test_spec_rejects_sse_without_http_url() -> None:
    with pytest.raises(ValueError, match="usually ending in /sse"):
        McpServerSpec(transport="sse", url="ftp://127.0.0.1/sse")


@module_loop
async def test_instance_session_over_sse(store: Store, sse_url: str) -> None:
    sse_instance(store, sse_url)
    session = InstanceSession(store, "sse echo")
    try:
        handshake = await session.start()
        result = await session.call_tool("echo", {"text": "ab", "times": 3})
    finally:
        await session.stop()

    assert handshake.server_name == "echo-server"
    assert sorted(tool.name for tool in session.tools) == ["echo", "env_value", "log_line"]
    assert result.value == {"text": "ababab"}
    assert result.is_error is False


@module_loop
async def test_engine_run_over_sse(store: Store, sse_url: str, services: ExecutorServices) -> None:
    instance_id = sse_instance(store, sse_url)
    studio = Engine(store, services=services)
    steps = [
        {"id": "first", "type": "mcp_call", "config": {"instance_id": instance_id, "tool": "echo",
                                                        "arguments": {"text": "x", "times": 2}}},
        {"id": "second", "type": "mcp_call", "config": {"instance_id": instance_id, "tool": "echo",
                                                         "arguments": {"text": "{{steps.first.result.text}}"}}},
    ]

    try:
        summary = await studio.wait(await studio.run_workflow(build_workflow(steps, [("first", "second")])))
    finally:
        await studio.aclose()

    assert summary.status == "completed", summary.error
    assert summary.result == {"second": {"text": "xx"}}


@module_loop
async def test_sse_to_missing_server_names_url(store: Store) -> None:
    sse_instance(store, "http://127.0.0.1:9/sse")
    session = InstanceSession(store, "sse echo")

    with pytest.raises(McpConnectError) as raised:
        await session.start()

    assert "could not connect" in str(raised.value)
    assert "http://127.0.0.1:9/sse" in str(raised.value)


async def test_sse_html_page_names_url_problem(store: Store, html_server: str) -> None:
    sse_instance(store, f"{html_server}/sse")
    session = InstanceSession(store, "sse echo")

    with pytest.raises(McpConnectError) as raised:
        await session.start()

    message = str(raised.value)
    assert "did not respond as an MCP server: it returned HTTP 200 with text/html" in message
    assert "check the URL" in message
    assert "check that the server is running" not in message
