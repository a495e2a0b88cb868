"""MCP client side of `mcp_call` steps: a pool of reusable sessions to MCP servers, one per server spec."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import TracebackType

from pydantic import JsonValue

from studio.engine.executors.mcp_connection import ProgressCallback, ServerConnection
from studio.engine.executors.mcp_errors import (
    McpConnectError,
    McpError,
    McpProtocolError,
    McpServerCrashedError,
    McpTimeoutError,
    McpToolError,
    McpUnknownToolError,
)
from studio.engine.executors.mcp_model import McpServerSpec, ToolInfo, ToolResult

__all__ = [
    "McpConnectError",
    "McpError",
    "McpProtocolError",
    "McpServerCrashedError",
    "McpServerSpec",
    "McpSessionPool",
    "McpTimeoutError",
    "McpToolError",
    "McpUnknownToolError",
    "ProgressCallback",
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
    """

    def __init__(self, *, mode: str = "auto") -> None:
        self._mode = mode
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
    ) -> ToolResult:
        """Call a tool, starting or reusing the session for spec.

        Cancelling the awaiting task cancels the call on the server. `on_progress(progress, total,
        message)` receives the server's progress notifications for this call; it runs on the event
        loop and must not block.

        Raises:
            McpConnectError: The server could not be started or reached.
            McpUnknownToolError: The server does not list the tool.
            McpToolError: The tool returned an error result (unless raise_on_error is False, in which
                case the result comes back with is_error set).
            McpTimeoutError: The call took longer than timeout_s; it was cancelled on the server.
            McpServerCrashedError: The server exited or dropped the connection during the call.
            McpProtocolError: The server rejected the request or returned an invalid result.
        """
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive or None, got {timeout_s}")
        connection = await self._connection(spec)
        logger.debug("calling tool %s on MCP server %s", tool, connection.name)
        return await connection.call_tool(
            tool, arguments, timeout_s=timeout_s, on_progress=on_progress, raise_on_error=raise_on_error
        )

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
            connection = ServerConnection(spec, mode=self._mode)
            self._connections[key] = connection
            try:
                await connection.open()
            except BaseException:
                await connection.close()
                raise
            return connection
