"""Errors raised by the MCP client side; each carries a user-facing message naming the server and tool."""

from __future__ import annotations


class McpError(Exception):
    """Base of every MCP client error.

    `message` is the whole user-facing text: what failed, on which server and tool, and what to do.
    It never contains request headers or environment values given in the server spec.
    """

    def __init__(self, message: str, *, server: str, tool: str | None = None, stderr_tail: str = "") -> None:
        full = message
        if stderr_tail:
            full = f"{message}\nLast lines the server wrote to stderr:\n{stderr_tail}"
        super().__init__(full)
        self.message = full
        self.server = server
        self.tool = tool
        self.stderr_tail = stderr_tail


class McpConnectError(McpError):
    """The server could not be started or reached, or it did not complete the MCP handshake."""


class McpAuthError(McpConnectError):
    """The HTTP server rejected the client's credentials (401 or 403); retrying with the same token cannot help."""


class McpToolError(McpError):
    """The tool ran and returned an error result (isError); `tool_message` is the tool's own text."""

    def __init__(self, message: str, *, server: str, tool: str, tool_message: str) -> None:
        super().__init__(message, server=server, tool=tool)
        self.tool_message = tool_message


class McpServerCrashedError(McpError):
    """The connection to the server was lost while a request was in flight (process exit or HTTP failure)."""


class McpTimeoutError(McpError):
    """A tool call did not finish within its timeout; the call was cancelled on the server."""

    def __init__(self, message: str, *, server: str, tool: str, timeout_s: float) -> None:
        super().__init__(message, server=server, tool=tool)
        self.timeout_s = timeout_s


class McpUnknownToolError(McpError):
    """The server does not list the requested tool; `close_matches` contains similar tool names."""

    def __init__(self, message: str, *, server: str, tool: str, close_matches: list[str]) -> None:
        super().__init__(message, server=server, tool=tool)
        self.close_matches = close_matches


class McpProtocolError(McpError):
    """The server returned a JSON-RPC error or a result that breaks the protocol or the tool's schema."""


class McpStdoutError(McpProtocolError):
    """An stdio server wrote something other than JSON-RPC to stdout, so its session was closed."""
