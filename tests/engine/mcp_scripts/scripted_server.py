"""A small stdio MCP server for the MCP client tests: elicitation, crashes, stderr lines and stray stdout output."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import mcp_types
from mcp.server.mcpserver import Elicit, MCPServer, Resolve
from mcp.server.mcpserver.resolve import Sample
from pydantic import BaseModel

server = MCPServer("scripted")


class Person(BaseModel):
    name: str
    age: int = 30


def ask_person() -> Elicit[Person]:
    return Elicit("Who are you?", Person)


def sample_haiku(topic: str) -> Sample:
    message = mcp_types.SamplingMessage(
        role="user", content=mcp_types.TextContent(type="text", text=f"A haiku on {topic}")
    )
    return Sample([message], max_tokens=40, system_prompt="You write haiku.")


@server.tool()
def greet(person: Annotated[Person, Resolve(ask_person)]) -> str:
    """Ask for a person through a resolver, which works on every protocol version, and greet them."""
    return f"hello {person.name}, {person.age}"


@server.tool()
def haiku(topic: str, reply: Annotated[mcp_types.CreateMessageResult, Resolve(sample_haiku)]) -> str:
    """Ask the client's LLM for a haiku through a resolver and return its text."""
    content = reply.content
    return content.text if isinstance(content, mcp_types.TextContent) else "(no text)"


@server.tool(annotations=mcp_types.ToolAnnotations(idempotentHint=True))
def crash_always(note: str) -> str:
    """Write a note to stderr and exit at once, on every call."""
    sys.stderr.write(f"fatal: {note} (pid {os.getpid()})\n")
    sys.stderr.flush()
    os._exit(3)


@server.tool()
def stray_print() -> str:
    """Write a line straight to the stdout descriptor, which breaks the JSON-RPC stream, then return."""
    os.write(1, b"debug: computing the answer\n")
    return "done"


@server.tool()
def log_stderr(lines: list[str]) -> int:
    """Write each line to stderr and return how many were written."""
    for line in lines:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()
    return len(lines)


@server.tool()
def pid() -> int:
    """Return the server's process id."""
    return os.getpid()


if __name__ == "__main__":
    server.run("stdio")
