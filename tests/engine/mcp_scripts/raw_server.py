"""A hand-written stdio JSON-RPC server that speaks just enough MCP (2025-11-25) to misbehave on purpose.

Tool `noisy` writes a line that is not JSON-RPC to stdout and never replies; tool `ok` replies.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request: dict[str, Any]) -> dict[str, Any] | None:
    method = request.get("method")
    if method == "initialize":
        return {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "raw", "version": "1.0"},
        }
    if method == "tools/list":
        schema = {"type": "object", "properties": {}}
        return {"tools": [{"name": "noisy", "inputSchema": schema}, {"name": "ok", "inputSchema": schema}]}
    if method == "tools/call" and request["params"]["name"] == "ok":
        return {"content": [{"type": "text", "text": "fine"}], "isError": False}
    if method == "tools/call":
        sys.stdout.write("Processing request, please wait...\n")
        sys.stdout.flush()
        return None
    raise LookupError(method)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        if "id" not in request:
            continue
        try:
            result = answer(request)
        except LookupError:
            send({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32601, "message": "Method not found"}})
            continue
        if result is not None:
            send({"jsonrpc": "2.0", "id": request["id"], "result": result})


if __name__ == "__main__":
    main()
