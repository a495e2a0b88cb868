"""MCP client side of `mcp_call` steps: a pool of reusable sessions to MCP servers, one per server spec."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from pydantic import JsonValue

from studio.engine.executors.mcp_callbacks import (
    CallScope,
    ElicitationAnswer,
    ElicitationRequest,
    Elicitor,
    Sampler,
    SamplingMessage,
    SamplingRequest,
    SamplingResponse,
)
from studio.engine.executors.mcp_connection import (
    CALLER_LIMIT,
    ProgressCallback,
    ServerConnection,
    instance_limit_name,
)
from studio.engine.executors.mcp_errors import (
    McpAuthError,
    McpConnectError,
    McpError,
    McpProtocolError,
    McpServerCrashedError,
    McpStdoutError,
    McpTimeoutError,
    McpToolError,
    McpUnknownToolError,
)
from studio.engine.executors.mcp_http_auth import HttpAuthFactory
from studio.engine.executors.mcp_model import (
    McpServerSpec,
    PromptArgument,
    PromptInfo,
    ResourceInfo,
    ServerIdentity,
    ToolInfo,
    ToolResult,
)

__all__ = [
    "CallScope",
    "ElicitationAnswer",
    "ElicitationRequest",
    "Elicitor",
    "HttpAuthFactory",
    "McpAuthError",
    "McpConnectError",
    "McpError",
    "McpProtocolError",
    "McpServerCrashedError",
    "McpServerSpec",
    "McpSessionPool",
    "McpStdoutError",
    "McpTimeoutError",
    "McpToolError",
    "McpUnknownToolError",
    "ProgressCallback",
    "PromptArgument",
    "PromptInfo",
    "ResourceInfo",
    "Sampler",
    "SamplingMessage",
    "SamplingRequest",
    "SamplingResponse",
    "ServerConnection",
    "ServerIdentity",
    "ToolInfo",
    "ToolResult",
]

logger = logging.getLogger(__name__)


class McpSessionPool:
    """One live session per `McpServerSpec.key`, each owned by its own task; reused across calls until close().

    A stdio server is started on first use and kept running, so any number of calls, concurrent
    ones included, share one subprocess. A session whose server exited or dropped the connection
    is replaced by a new one on the next call. All methods must run on one event loop.

    Args:
        mode: Protocol negotiation passed to the SDK's `Client`. "auto" tries the 2026-07-28
            protocol and falls back to the 2025-11-25 handshake; "legacy" forces the handshake.
        roots: Folders the client offers to servers that ask for its roots (`roots/list`).
        http_auth: Builds the HTTP authentication of a spec's `auth_connection_id`; without it, such
            a spec fails to connect with McpAuthError.
    """

    def __init__(
        self, *, mode: str = "auto", roots: Sequence[Path] = (), http_auth: HttpAuthFactory | None = None
    ) -> None:
        self._mode = mode
        self._roots = tuple(roots)
        self._http_auth = http_auth
        self._connections: dict[str, ServerConnection] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False

    async def __aenter__(self) -> McpSessionPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def call_tool(
        self,
        spec: McpServerSpec,
        tool: str,
        arguments: Mapping[str, JsonValue],
        *,
        timeout_s: float | None = None,
        on_progress: ProgressCallback | None = None,
        raise_on_error: bool = True,
        scope: CallScope | None = None,
    ) -> ToolResult:
        """Call a tool, starting or reusing the session for spec.

        `timeout_s` defaults to `spec.call_timeout_s`; see `CallDeadline` for how progress and
        server requests affect it. Cancelling the awaiting task cancels the call on the server.
        `on_progress(progress, total, message)` receives the server's progress notifications for
        this call; it runs on the event loop and must not block. `scope` decides how the server's
        sampling and elicitation requests during the call are served.

        When the server is lost during the call, the pool starts it again and repeats the call
        once, but only for a tool the server marks read-only or idempotent, because any other
        tool may have acted before the crash.

        Raises:
            McpConnectError: The server could not be started or reached.
            McpUnknownToolError: The server does not list the tool.
            McpToolError: The tool returned an error result (unless raise_on_error is False, in which
                case the result comes back with is_error set).
            McpTimeoutError: The call took longer than its time limit; it was cancelled on the server.
            McpServerCrashedError: The server exited or dropped the connection during the call.
            McpProtocolError: The server rejected the request or returned an invalid result.
        """
        limit_name = CALLER_LIMIT
        if timeout_s is None:
            timeout_s = spec.call_timeout_s
            limit_name = instance_limit_name(spec)
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive or None, got {timeout_s}")
        connection = await self._connection(spec)
        logger.debug("calling tool %s on MCP server %s", tool, connection.name)
        try:
            return await connection.call_tool(
                tool,
                arguments,
                timeout_s=timeout_s,
                on_progress=on_progress,
                raise_on_error=raise_on_error,
                scope=scope,
                limit_name=limit_name,
            )
        except McpServerCrashedError as crash:
            info = (await _cached_tools(connection)).get(tool)
            if info is None or not (info.read_only or info.idempotent):
                raise
            logger.warning(
                "MCP server %s was lost during tool %s; starting it again and repeating the call once",
                connection.name,
                tool,
            )
            first_crash = crash
        try:
            connection = await self._connection(spec)
        except McpConnectError as error:
            raise McpConnectError(
                f"{first_crash.message}\nStarting the server again failed: {error.message}",
                server=error.server,
            ) from error
        try:
            return await connection.call_tool(
                tool,
                arguments,
                timeout_s=timeout_s,
                on_progress=on_progress,
                raise_on_error=raise_on_error,
                scope=scope,
                limit_name=limit_name,
            )
        except McpServerCrashedError as second:
            raise McpServerCrashedError(
                f"MCP server '{connection.name}' was lost twice during tool '{tool}', also after it was started "
                "again; check the server's stderr below",
                server=second.server,
                tool=tool,
                stderr_tail=second.stderr_tail,
            ) from second

    async def connection(self, spec: McpServerSpec) -> ServerConnection:
        """Return the live session for spec, starting the server or replacing a dead session first.

        Raises:
            McpConnectError: The server could not be started or reached.
        """
        return await self._connection(spec)

    async def list_tools(self, spec: McpServerSpec) -> list[ToolInfo]:
        """Return the tools the server lists now, in the server's order.

        Raises:
            McpConnectError: The server could not be started or reached.
            McpTimeoutError: The listing took longer than spec.connect_timeout_s.
            McpServerCrashedError: The server exited or dropped the connection meanwhile.
        """
        connection = await self._connection(spec)
        try:
            async with asyncio.timeout(spec.connect_timeout_s):
                tools = await connection.list_tools(refresh=True)
        except TimeoutError:
            raise McpTimeoutError(
                f"MCP server '{connection.name}' did not list its tools within {spec.connect_timeout_s} s; "
                "raise the connect timeout if the server is slow",
                server=connection.name,
                tool="tools/list",
                timeout_s=spec.connect_timeout_s,
            ) from None
        except McpError:
            raise
        except Exception as exc:
            raise McpServerCrashedError(
                f"listing the tools of MCP server '{connection.name}' failed: {type(exc).__name__}: {exc}",
                server=connection.name,
                stderr_tail=connection.stderr_tail(),
            ) from exc
        return list(tools.values())

    def stderr_tail(self, spec: McpServerSpec, lines: int = 20) -> str:
        """Return the last lines the stdio server of spec wrote to stderr ('' for HTTP or never started)."""
        connection = self._connections.get(spec.key)
        return connection.stderr_tail(lines) if connection is not None else ""

    async def close(self) -> None:
        """Close every session and stop every server subprocess; the pool cannot be used afterwards."""
        self._closed = True
        connections = list(self._connections.values())
        await asyncio.gather(*(connection.close() for connection in connections))

    async def _connection(self, spec: McpServerSpec) -> ServerConnection:
        """Return the live connection for spec, opening one (or replacing a dead one) under the key's lock."""
        if self._closed:
            raise RuntimeError("this McpSessionPool is closed; create a new pool")
        key = spec.key
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            existing = self._connections.get(key)
            if existing is not None and existing.alive:
                return existing
            if existing is not None:
                logger.info("MCP session to %s is no longer alive; starting a new one", existing.name)
                await existing.close()
            connection = ServerConnection(spec, mode=self._mode, roots=self._roots, http_auth=self._http_auth)
            self._connections[key] = connection
            try:
                await connection.open()
            except BaseException:
                await connection.close()
                raise
            return connection


async def _cached_tools(connection: ServerConnection) -> dict[str, ToolInfo]:
    """Return the tools the connection listed before it was lost; empty when it never listed them."""
    try:
        return await connection.list_tools()
    except McpError:
        return {}
