"""Misbehaving MCP servers: the message each one leaves on the failed step, and how fast it comes."""

from __future__ import annotations

import http.server
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from studio.engine import Engine, ExecutorServices
from studio.engine.executors.mcp import (
    McpAuthError,
    McpProtocolError,
    McpServerCrashedError,
    McpServerSpec,
    McpSessionPool,
    McpStdoutError,
)
from studio.engine.executors_api import spec_from_server_url
from studio.mcp.catalog import add_entry
from studio.mcp.instances import Timeouts, create_instance
from studio.store import Store
from tests.conftest import build_workflow, store
from tests.engine.mcp_fixtures import html_server, pool

__all__ = ["html_server", "pool", "store"]

SCRIPTS = Path(__file__).resolve().parent / "mcp_scripts"
RAW_SERVER = str(SCRIPTS / "raw_server.py")
SCRIPTED_SERVER = str(SCRIPTS / "scripted_server.py")


@pytest_asyncio.fixture
async def engine(store: Store) -> AsyncIterator[Engine]:
    engine = Engine(store, services=ExecutorServices(store, environ=dict(os.environ)))
    try:
        yield engine
    finally:
        await engine.aclose()


def instance(
    store: Store,
    name: str,
    *,
    command: str | None = None,
    args: tuple[str, ...] = (),
    url: str | None = None,
    connect_s: float = 30.0,
    call_s: float | None = None,
) -> str:
    """Create a catalog entry and an instance of it; return the instance id."""
    transport = "http" if url else "stdio"
    entry = add_entry(store, name, transport, command=command, args=list(args), url=url)
    created = create_instance(store, entry, timeouts=Timeouts(connect_s=connect_s, call_s=call_s))
    return created.id


async def failed_step_message(engine: Engine, instance_id: str, tool: str = "anything") -> str:
    """Run one mcp_call step on the instance, which must fail, and return the step's error message."""
    step = {"id": "call", "type": "mcp_call", "config": {"instance_id": instance_id, "tool": tool, "arguments": {}}}
    run_id = await engine.run_workflow(build_workflow([step]))
    summary = await engine.wait(run_id)
    assert summary.status == "failed", summary.result
    error = engine.store.step_runs(run_id)["call"].error
    assert isinstance(error, dict)
    return str(error["message"])


# -- stdio ----------------------------------------------------------------------------------------


async def test_wrong_command(engine: Engine, store: Store) -> None:
    instance_id = instance(store, "ghost", command="xyz-no-such-server")

    message = await failed_step_message(engine, instance_id)

    assert message == (
        "command 'xyz-no-such-server' was not found; check the MCP instance's command or install the server"
    )


async def test_exit_at_start_shows_stderr(engine: Engine, store: Store) -> None:
    script = "import sys; sys.stderr.write('settings.toml: missing key api_url\\n'); sys.exit(2)"
    instance_id = instance(store, "quitter", command=sys.executable, args=("-c", script))

    message = await failed_step_message(engine, instance_id)

    assert "MCP server 'quitter' exited during startup" in message
    assert "settings.toml: missing key api_url" in message


async def test_handshake_never_answered(engine: Engine, store: Store) -> None:
    instance_id = instance(
        store, "mute", command=sys.executable, args=("-c", "import sys; sys.stdin.read()"), connect_s=1.0
    )

    message = await failed_step_message(engine, instance_id)

    assert "MCP server 'mute' did not complete the MCP handshake within 1.0 s" in message
    assert "raise the connect timeout" in message


async def test_stdout_garbage_at_start_fails_fast(engine: Engine, store: Store) -> None:
    script = "import sys; print('Server listening on stdio', flush=True); sys.stdin.read()"
    instance_id = instance(store, "chatty", command=sys.executable, args=("-c", script), connect_s=60.0)
    started = time.monotonic()

    message = await failed_step_message(engine, instance_id)

    assert time.monotonic() - started < 15
    assert "MCP server 'chatty' wrote 'Server listening on stdio' to stdout during the handshake" in message
    assert "must write only JSON-RPC messages to stdout" in message


async def test_stdout_garbage_in_call_fails_fast(pool: McpSessionPool) -> None:
    spec = McpServerSpec(transport="stdio", command=sys.executable, args=(RAW_SERVER,), name="raw")
    before = await pool.call_tool(spec, "ok", {})
    started = time.monotonic()

    with pytest.raises(McpStdoutError) as caught:
        await pool.call_tool(spec, "noisy", {}, timeout_s=60)
    elapsed = time.monotonic() - started
    after = await pool.call_tool(spec, "ok", {})

    assert elapsed < 15
    assert "wrote 'Processing request, please wait...' to stdout while tool 'noisy' was running" in caught.value.message
    assert "send logs and other output to stderr" in caught.value.message
    assert before.value == "fine"
    assert after.value == "fine"


async def test_idempotent_crash_restarted_once(pool: McpSessionPool) -> None:
    spec = McpServerSpec(transport="stdio", command=sys.executable, args=(SCRIPTED_SERVER,), name="scripted")
    first = await pool.call_tool(spec, "pid", {})
    assert isinstance(first.value, dict)
    first_pid = first.value["result"]

    with pytest.raises(McpServerCrashedError) as caught:
        await pool.call_tool(spec, "crash_always", {"note": "disk full"})
    last = await pool.call_tool(spec, "pid", {})

    assert "was lost twice during tool 'crash_always', also after it was started again" in caught.value.message
    # The tail comes from the server started again, the second one that ran the tool.
    assert caught.value.stderr_tail.count("fatal: disk full") == 1
    assert f"(pid {first_pid})" not in caught.value.stderr_tail
    assert isinstance(last.value, dict)
    assert last.value["result"] != first_pid


# -- HTTP -----------------------------------------------------------------------------------------


class _StatusHandler(http.server.BaseHTTPRequestHandler):
    """Replies to every request with the status code in the first path segment, like a gateway checking tokens."""

    def _reply(self) -> None:
        status = int(self.path.strip("/").split("/")[0])
        body = b'{"error": "invalid_token"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _reply
    do_POST = _reply
    do_DELETE = _reply

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def status_server() -> Iterator[str]:
    """Base URL of a loopback server that replies with the status code named in the path."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_html_page_on_step(engine: Engine, store: Store, html_server: str) -> None:
    instance_id = instance(store, "website", url=f"{html_server}/mcp", connect_s=10.0)

    message = await failed_step_message(engine, instance_id)

    assert "MCP server 'website'" in message
    assert "did not respond as an MCP server: it returned HTTP 200 with text/html" in message
    assert "check the URL" in message


@pytest.mark.parametrize(
    ("status", "problem"),
    [(401, "the token is missing or expired"), (403, "the token has expired or lacks permission")],
)
async def test_auth_failure_names_connection(
    pool: McpSessionPool, status_server: str, status: int, problem: str
) -> None:
    spec = McpServerSpec(
        transport="http",
        url=f"{status_server}/{status}/mcp",
        headers={"Authorization": "Bearer tok-secret-77"},
        name="issues",
        credential_source="github-token",
        connect_timeout_s=10.0,
    )

    with pytest.raises(McpAuthError) as caught:
        await pool.call_tool(spec, "list_issues", {})

    assert f"MCP server 'issues' at {status_server}/{status}/mcp rejected the request" in caught.value.message
    assert f"HTTP {status}" in caught.value.message
    assert problem in caught.value.message
    assert "update the token of connection 'github-token'" in caught.value.message
    assert "tok-secret-77" not in caught.value.message


async def test_auth_failure_on_step(engine: Engine, store: Store, status_server: str) -> None:
    instance_id = instance(store, "gateway", url=f"{status_server}/401/mcp", connect_s=10.0)

    message = await failed_step_message(engine, instance_id)

    assert f"MCP server 'gateway' at {status_server}/401/mcp rejected the request" in message
    assert "HTTP 401 Unauthorized" in message
    assert "bind a connection with a valid token to the MCP instance's Authorization header" in message


def test_server_url_names_script() -> None:
    cases = {
        f"stdio:{sys.executable} {RAW_SERVER} exit_at_start": "raw_server.py",
        f"stdio:{sys.executable} -m some.server --flag": "some.server",
        "stdio:npx -y @modelcontextprotocol/server-everything": "server-everything",
        "stdio:uv run weather.py": "weather.py",
        f"stdio:{sys.executable} -c 'print(1)'": os.path.basename(sys.executable),
        "stdio:/opt/bin/mcp-server-time --local-timezone UTC": "mcp-server-time",
        "stdio:studio-tools": "studio-tools",
    }
    for server_url, expected in cases.items():
        assert spec_from_server_url(server_url, {}).display_name == expected, server_url


async def test_rejected_sampling_names_real_fix(pool: McpSessionPool) -> None:
    spec = McpServerSpec(transport="stdio", command=sys.executable, args=(SCRIPTED_SERVER,), name="scripted")

    with pytest.raises(McpProtocolError) as caught:
        await pool.call_tool(spec, "haiku", {"topic": "rain"})

    message = caught.value.message
    assert "sampling is not allowed for MCP server 'scripted'" in message
    assert "allow_sampling" in message
    assert "check the tool's arguments" not in message


async def test_reported_failures_log_no_sdk_traceback(
    engine: Engine, store: Store, html_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    script = "import sys; print('Server listening on stdio', flush=True); sys.stdin.read()"
    chatty = instance(store, "chatty", command=sys.executable, args=("-c", script), connect_s=60.0)
    website = instance(store, "website", url=f"{html_server}/mcp", connect_s=10.0)

    await failed_step_message(engine, chatty)
    await failed_step_message(engine, website)

    sdk_records = [record for record in caplog.records if record.name.startswith("mcp.")]
    assert sdk_records == [], [record.getMessage() for record in sdk_records]
    assert "wrote a line to stdout that is not JSON-RPC" in caplog.text


async def test_missing_interpreter_named(engine: Engine, store: Store, tmp_path: Path) -> None:
    script = tmp_path / "moved-venv-server"
    script.write_text("#!/no/such/venv/bin/python\nprint('never runs')\n")
    script.chmod(0o755)
    instance_id = instance(store, "moved", command=str(script))

    message = await failed_step_message(engine, instance_id)

    assert f"command '{script}' starts with '#!/no/such/venv/bin/python'" in message
    assert "interpreter was not found" in message
    assert "was not found; check the MCP instance's command" not in message
