"""A live session to one instance for the instance page and the CLI: handshake, listings, tool calls, stderr."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pydantic import JsonValue

from studio.engine.executors.mcp_connection import ServerConnection, instance_limit_name
from studio.engine.executors.mcp_model import McpServerSpec, ToolInfo, ToolResult
from studio.mcp.instances import get_instance
from studio.mcp.resolve import connection_auth_factory, spec_for_instance
from studio.mcp.tool_cache import cache_tools
from studio.secrets import SecretVault
from studio.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Handshake:
    """The server's identity, protocol version, capabilities and instructions from the handshake."""

    server_name: str
    server_version: str
    protocol_version: str
    capabilities: dict[str, JsonValue]
    instructions: str | None = None

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "server_name": self.server_name,
            "server_version": self.server_version,
            "protocol_version": self.protocol_version,
            "capabilities": self.capabilities,
            "instructions": self.instructions,
        }


@dataclass(frozen=True)
class Listing:
    """Resources or prompts as plain JSON objects, or the reason they could not be listed."""

    items: list[dict[str, JsonValue]] = field(default_factory=list)
    note: str = ""


class InstanceSession:
    """Starts one instance (by id or name) and keeps one session to it until stop().

    All methods run on one event loop. The spec, with its secrets, lives only inside this object.
    """

    def __init__(
        self,
        store: Store,
        instance: str,
        *,
        profile: str | None = None,
        vault: SecretVault | None = None,
        mode: str = "auto",
    ) -> None:
        self._store = store
        self.instance = get_instance(store, instance)
        self._profile = profile
        self._vault = vault
        self._mode = mode
        self._connection: ServerConnection | None = None
        self.handshake: Handshake | None = None
        self.tools: list[ToolInfo] = []

    @property
    def alive(self) -> bool:
        return self._connection is not None and self._connection.alive

    async def start(self) -> Handshake:
        """Resolve the spec, open the session, read the handshake and cache the tool list in the store.

        Raises:
            McpConfigError, McpNotFoundError, SecretsError: the instance cannot be resolved to a spec.
            McpError: the server could not be started or reached (McpConnectError) or failed to list tools.
        """
        await self.stop()
        # A thread, because the encrypted-file vault can take seconds to unlock.
        spec: McpServerSpec = await asyncio.to_thread(
            spec_for_instance, self._store, self.instance.id, profile=self._profile, vault=self._vault
        )
        connection = ServerConnection(
            spec, mode=self._mode, http_auth=connection_auth_factory(self._store, self._vault)
        )
        self._connection = connection
        await connection.open()
        self.handshake = _handshake_of(connection)
        self.tools = await self.list_tools()
        cache_tools(self._store, self.instance.id, self.tools, self.handshake.to_json())
        logger.info("started MCP instance %s (%s): %d tools", self.instance.id, self.instance.name, len(self.tools))
        return self.handshake

    async def list_tools(self) -> list[ToolInfo]:
        connection = self._require()
        async with asyncio.timeout(connection.spec.connect_timeout_s):
            tools = await connection.list_tools(refresh=True)
        return list(tools.values())

    async def list_resources(self) -> Listing:
        """Return the server's resources; a server without the resources capability gets a note instead."""
        return await self._listing("resources", "resources")

    async def list_prompts(self) -> Listing:
        """Return the server's prompts; a server without the prompts capability gets a note instead."""
        return await self._listing("prompts", "prompts")

    async def call_tool(
        self, tool: str, arguments: Mapping[str, JsonValue], *, timeout_s: float | None = None
    ) -> ToolResult:
        """Call a tool and return its result, error results included (is_error set).

        Raises:
            McpError: the tool is unknown, timed out, the server crashed or broke the protocol.
        """
        connection = self._require()
        if timeout_s is not None:
            return await connection.call_tool(
                tool, arguments, timeout_s=timeout_s, on_progress=None, raise_on_error=False
            )
        return await connection.call_tool(
            tool,
            arguments,
            timeout_s=self.instance.timeouts.call_s,
            on_progress=None,
            raise_on_error=False,
            limit_name=instance_limit_name(connection.spec),
        )

    def add_stderr_listener(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call `listener` on the event loop with each stderr line from now on; return the remover.

        Raises:
            RuntimeError: the session was never started.
        """
        if self._connection is None:
            raise RuntimeError(f"MCP instance {self.instance.name!r} was never started")
        return self._connection.add_stderr_listener(listener)

    def stderr_tail(self, lines: int = 500) -> str:
        """Return the last lines the stdio server wrote to stderr ('' for remote servers)."""
        return self._connection.stderr_tail(lines) if self._connection is not None else ""

    async def stop(self) -> None:
        """Close the session and stop the server; the stderr captured so far stays readable."""
        if self._connection is not None:
            await self._connection.close()

    def _require(self) -> ServerConnection:
        if self._connection is None or not self._connection.alive:
            raise RuntimeError(f"MCP instance {self.instance.name!r} is not running; start it first")
        return self._connection

    async def _listing(self, capability: str, kind: str) -> Listing:
        connection = self._require()
        if self.handshake is not None and capability not in self.handshake.capabilities:
            return Listing(note=f"the server does not offer {kind} (no '{capability}' capability)")
        async with asyncio.timeout(connection.spec.connect_timeout_s):
            if kind == "resources":
                items: list[dict[str, JsonValue]] = [
                    {
                        "uri": resource.uri,
                        "name": resource.name,
                        "description": resource.description,
                        "mime_type": resource.mime_type,
                    }
                    for resource in await connection.list_resources()
                ]
            else:
                items = [
                    {
                        "name": prompt.name,
                        "description": prompt.description,
                        "arguments": [
                            {"name": a.name, "description": a.description, "required": a.required}
                            for a in prompt.arguments
                        ],
                    }
                    for prompt in await connection.list_prompts()
                ]
        return Listing(items=items)


def _handshake_of(connection: ServerConnection) -> Handshake:
    info = connection.server_info
    return Handshake(
        server_name=info.name if info is not None else "",
        server_version=info.version if info is not None else "",
        protocol_version=connection.protocol_version or "",
        capabilities=connection.capabilities,
        instructions=connection.instructions,
    )
