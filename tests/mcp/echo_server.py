"""A small MCP server for the instance tests: echoes env variables, checks a bearer token over HTTP.

Run with no option for stdio, ``--http`` for streamable HTTP (requests need ``Authorization: Bearer
$ECHO_TOKEN`` when that variable is set) or ``--sse`` for the legacy SSE transport. Over HTTP the
first stdout line is the endpoint URL.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send


def build() -> MCPServer:
    server = MCPServer("echo-server", version="1.2.3")

    @server.tool()
    def env_value(name: str) -> str:
        """Return the value of an environment variable of the server process, or '' when unset."""
        return os.environ.get(name, "")

    @server.tool()
    def log_line(text: str) -> str:
        """Write the text as one line to the server's stderr and return it."""
        sys.stderr.write(f"{text}\n")
        sys.stderr.flush()
        return text

    @server.tool()
    def echo(text: str, times: int = 1) -> dict[str, Any]:
        """Return the text repeated."""
        return {"text": text * times}

    return server


class BearerCheck:
    """ASGI wrapper that returns HTTP 401 for requests without the expected bearer token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization", b"").decode() != f"Bearer {self.token}":
                await send(
                    {"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]}
                )
                await send({"type": "http.response.body", "body": b"missing or wrong token"})
                return
        await self.app(scope, receive, send)


async def serve(app: ASGIApp, path: str) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    # Listen before the URL is written, so a test that connects at once is queued instead of refused.
    listener.listen(128)
    port = listener.getsockname()[1]
    sys.stdout.write(f"http://127.0.0.1:{port}{path}\n")
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve(sockets=[listener])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--sse", action="store_true")
    args = parser.parse_args()
    server = build()
    sys.stderr.write("echo server starting\n")
    sys.stderr.flush()
    if args.sse:
        anyio.run(serve, server.sse_app(), "/sse")
    elif args.http:
        app: ASGIApp = server.streamable_http_app(host="127.0.0.1")
        token = os.environ.get("ECHO_TOKEN")
        if token:
            app = BearerCheck(app, token)
        anyio.run(serve, app, "/mcp")
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
