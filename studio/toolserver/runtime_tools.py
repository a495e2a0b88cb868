"""Clock and diagnostic tools of the studio tool server: current_time, wait, fail, crash, server_info."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sys
from dataclasses import dataclass
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)

MAX_WAIT_S = 3600.0


@dataclass
class CallCounters:
    """Counts of `wait` calls by outcome, reported by server_info so tests can observe cancellation."""

    waits_running: int = 0
    waits_completed: int = 0
    waits_cancelled: int = 0


class CurrentTime(BaseModel):
    iso: str = Field(description="ISO 8601 time with UTC offset.")
    timezone: str
    utc_offset: str = Field(description="Offset from UTC as +HH:MM.")
    unix: float = Field(description="Seconds since 1970-01-01 UTC.")


class WaitResult(BaseModel):
    waited_s: float
    steps: int


class ServerInfo(BaseModel):
    pid: int
    name: str
    version: str
    python: str
    root: str | None = Field(description="Root directory of the file tools, or null when none is set.")
    waits_running: int
    waits_completed: int
    waits_cancelled: int


def current_time(
    timezone: Annotated[str, Field(description="IANA time zone name, e.g. 'Europe/Paris'.")] = "UTC",
) -> CurrentTime:
    """Return the current time in an IANA time zone."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"time zone {timezone!r} was not found; use an IANA name such as 'UTC' or 'America/New_York'"
        ) from None
    now = dt.datetime.now(zone)
    offset = now.strftime("%z")
    return CurrentTime(
        iso=now.isoformat(),
        timezone=timezone,
        utc_offset=f"{offset[:3]}:{offset[3:]}",
        unix=now.timestamp(),
    )


def fail(
    message: Annotated[str, Field(description="Text of the error result.")] = "requested failure",
) -> CallToolResult:
    """Return an error result (isError) with the given message; for testing error handling."""
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


def crash(
    exit_code: Annotated[int, Field(ge=1, le=255, description="Process exit status.")] = 3,
    message: Annotated[str, Field(description="Line written to stderr before exiting.")] = "crash requested",
) -> str:
    """Write a message to stderr and end the server process at once; for testing crash handling."""
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()
    os._exit(exit_code)


def register(server: MCPServer, counters: CallCounters, root: str | None, version: str) -> None:
    """Add current_time, wait, fail, crash and server_info to a server."""
    server.add_tool(current_time)
    server.add_tool(fail)
    server.add_tool(crash)

    @server.tool()
    async def wait(
        ctx: Context,
        seconds: Annotated[float, Field(ge=0, le=MAX_WAIT_S, description="Total time to wait.")],
        steps: Annotated[int, Field(ge=1, le=10_000, description="Progress notifications sent.")] = 10,
    ) -> WaitResult:
        """Wait for the given time, sending one progress notification per step."""
        counters.waits_running += 1
        try:
            for step in range(1, steps + 1):
                await asyncio.sleep(seconds / steps)
                await ctx.report_progress(step, steps, f"step {step} of {steps}")
        except asyncio.CancelledError:
            counters.waits_cancelled += 1
            logger.info("wait of %s s was cancelled", seconds)
            raise
        finally:
            counters.waits_running -= 1
        counters.waits_completed += 1
        return WaitResult(waited_s=seconds, steps=steps)

    @server.tool()
    def server_info() -> ServerInfo:
        """Return the server's process id, version, file root and counts of wait calls."""
        return ServerInfo(
            pid=os.getpid(),
            name=server.name,
            version=version,
            python=sys.version.split()[0],
            root=root,
            waits_running=counters.waits_running,
            waits_completed=counters.waits_completed,
            waits_cancelled=counters.waits_cancelled,
        )
