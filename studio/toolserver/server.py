"""Build and run the studio's own MCP tool server over stdio or streamable HTTP."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer

from studio.toolserver import file_tools, regex_tools, runtime_tools, text_tools

logger = logging.getLogger(__name__)

SERVER_NAME = "studio-tools"
SERVER_VERSION = "0.1.0"


def build_server(root: str | None = None) -> MCPServer:
    """Create the tool server with every tool registered.

    Args:
        root: Directory the file tools are confined to; None leaves the file tools
            registered but returning an error that explains how to set a root.

    Raises:
        ValueError: root is given but is not an existing directory.
    """
    sandbox = file_tools.FileSandbox(root)
    server = MCPServer(
        SERVER_NAME,
        version=SERVER_VERSION,
        instructions="Offline text, data, file and diagnostic tools for Workflow Studio workflows.",
        log_level="WARNING",
    )
    text_tools.register(server)
    regex_tools.register(server)
    file_tools.register(server, sandbox)
    resolved_root = str(sandbox.root) if sandbox.root is not None else None
    runtime_tools.register(server, runtime_tools.CallCounters(), resolved_root, SERVER_VERSION)
    return server


def open_listener(host: str, port: int) -> socket.socket:
    """Return a socket listening on host:port (port 0 picks a free port), IPv4 or IPv6 as ``host`` resolves.

    Raises ValueError naming the address when it cannot be resolved or bound.
    """
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise ValueError(
            f"cannot resolve --host {host!r}: {error.strerror}; pass an address such as 127.0.0.1 or ::1"
        ) from None
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        # Listen before the URL is written: a client that reads it may connect at once, before uvicorn starts.
        listener.listen(128)
    except OSError as error:
        listener.close()
        raise ValueError(
            f"cannot listen on {host} port {port}: {error.strerror}; pass another --port, or 0 for a free one"
        ) from None
    return listener


async def serve_http(server: MCPServer, host: str, listener: socket.socket) -> None:
    """Serve streamable HTTP on ``listener`` (from :func:`open_listener`) and write its URL to stdout."""
    bound_port = listener.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    url = f"http://{url_host}:{bound_port}/mcp"
    app = server.streamable_http_app(host=host)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    logger.info("serving MCP over streamable HTTP at %s", url)
    # The first stdout line is the contract with the parent process, which needs it when port is 0.
    sys.stdout.write(f"{url}\n")
    sys.stdout.flush()
    await uvicorn.Server(config).serve(sockets=[listener])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="studio-tools",
        description="Workflow Studio's MCP tool server (stdio by default).",
    )
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP listen address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port; 0 picks a free port (default: 8765)")
    parser.add_argument(
        "--root",
        default=os.environ.get(file_tools.ROOT_ENV_VAR),
        help=f"directory the file tools are confined to (default: ${file_tools.ROOT_ENV_VAR}; none disables them)",
    )
    parser.add_argument("--log-level", default="WARNING", help="log level for stderr (default: WARNING)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the tool server; the command-line entry point `studio-tools`."""
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        server = build_server(args.root)
        listener = open_listener(args.host, args.port) if args.http else None
    except ValueError as exc:
        sys.stderr.write(f"studio-tools: {exc}\n")
        raise SystemExit(2) from None
    if listener is not None:
        anyio.run(serve_http, server, args.host, listener)
    else:
        server.run("stdio")
