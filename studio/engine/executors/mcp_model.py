"""Plain data of the MCP client side: how to reach a server, tool descriptions and tool results."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import JsonValue

from studio.engine.executors.llm_errors import redact

# Session keys are HMACs under a per-process salt, so a key never reveals an env value or header,
# not even to a guess-and-hash attempt, yet equal specs give equal keys within the process.
_KEY_SALT = secrets.token_bytes(32)


def redact_url(url: str) -> str:
    """Return the URL without user info, query and fragment, the parts that may carry credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class McpServerSpec:
    """How to reach one MCP server: a command run over stdio, a streamable HTTP URL, or a legacy SSE URL.

    `env` and `headers` may hold secrets. They are excluded from `repr`, `key` and every message.
    """

    transport: Literal["stdio", "http", "sse"]
    """``stdio`` runs `command`; ``http`` is streamable HTTP at `url`; ``sse`` is the legacy HTTP+SSE
    transport, whose `url` is the event stream (usually ending in /sse)."""
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = field(default=None, repr=False)
    cwd: str | None = None
    url: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] | None = field(default=None, repr=False)
    name: str = ""
    connect_timeout_s: float = 30.0
    call_timeout_s: float | None = None
    """Default time limit of one tool call in seconds; None means no limit unless the caller gives one."""
    reset_timeout_on_progress: bool = False
    """Whether each progress notification from the server restarts the call's time limit."""
    max_call_timeout_s: float | None = None
    """Hard limit in seconds on one call whose time limit progress notifications keep restarting.

    None means one hour, or the call timeout when that is longer."""
    allow_sampling: bool = False
    """Whether the server's sampling requests are served by the default LLM connection."""
    credential_source: str = ""
    """Name of the connection that authenticates the server, so an auth failure can name what to fix."""
    auth_connection_id: str | None = None
    """Id of the connection whose HTTP authentication the client applies to every request.

    For an ``oauth2`` connection that is a bearer token, renewed before it expires and once more after
    an HTTP 401. The id is not a secret, so it is part of `key`: each connection gets its own session."""
    secret_values: tuple[str, ...] = field(default=(), repr=False, compare=False)
    """Secret values in `env` or `headers`, such as those bound from connections.

    The client replaces them with a placeholder in the server's stderr lines and in tool error texts,
    because a failing server often prints the key it was given."""

    def __post_init__(self) -> None:
        if self.transport not in ("stdio", "http", "sse"):
            raise ValueError(f"transport {self.transport!r} is not supported; use 'stdio', 'http' or 'sse'")
        if self.auth_connection_id is not None and self.transport == "stdio":
            raise ValueError("auth_connection_id applies to HTTP servers only; bind the connection to an env variable")
        if self.transport == "stdio" and not self.command:
            raise ValueError("an stdio MCP server needs a command; set 'command' to the server executable")
        if self.transport in ("http", "sse"):
            scheme = urlsplit(self.url or "").scheme
            if scheme not in ("http", "https"):
                usual = "/mcp" if self.transport == "http" else "/sse"
                raise ValueError(
                    f"an HTTP MCP server needs an http:// or https:// URL, got {redact_url(self.url or '')!r}; "
                    f"set 'url' to the server's endpoint, usually ending in {usual}"
                )
        if self.connect_timeout_s <= 0:
            raise ValueError(f"connect_timeout_s must be positive, got {self.connect_timeout_s}")
        for option in ("call_timeout_s", "max_call_timeout_s"):
            value = getattr(self, option)
            if value is not None and value <= 0:
                raise ValueError(f"{option} must be positive or None, got {value}")
        # A list given for args would make the frozen spec unhashable; store a tuple instead.
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "secret_values", tuple(self.secret_values))

    def hide_secrets(self, text: str) -> str:
        """Return ``text`` with each of `secret_values` replaced by a placeholder."""
        return redact(text, self.secret_values)

    @property
    def display_name(self) -> str:
        """Name for messages: `name`, else the command's file name or the redacted URL."""
        if self.name:
            return self.name
        if self.transport == "stdio":
            return os.path.basename(self.command or "")
        return redact_url(self.url or "")

    @property
    def key(self) -> str:
        """Identity for session reuse: equal for equal specs, and free of secrets."""
        identity = {
            "transport": self.transport,
            "command": self.command,
            "args": list(self.args),
            "env": sorted((self.env or {}).items()),
            "cwd": self.cwd,
            "url": self.url,
            "headers": sorted((self.headers or {}).items()),
            "auth_connection_id": self.auth_connection_id,
        }
        digest = hmac.new(_KEY_SALT, json.dumps(identity).encode(), hashlib.sha256).hexdigest()[:16]
        return f"{self.transport}:{self.display_name}#{digest}"


@dataclass(frozen=True)
class ToolInfo:
    """One tool as the server lists it.

    `read_only` and `idempotent` are the server's own hints (readOnlyHint, idempotentHint); they
    decide whether a call lost to a server crash may be sent again.
    """

    name: str
    description: str
    input_schema: dict[str, JsonValue]
    output_schema: dict[str, JsonValue] | None
    read_only: bool = False
    idempotent: bool = False


@dataclass(frozen=True)
class ServerIdentity:
    """The name and version a server gave for itself in the handshake."""

    name: str
    version: str
    title: str | None = None


@dataclass(frozen=True)
class ResourceInfo:
    """One resource as the server lists it."""

    uri: str
    name: str
    description: str
    mime_type: str | None


@dataclass(frozen=True)
class PromptArgument:
    """One argument of a prompt template."""

    name: str
    description: str
    required: bool


@dataclass(frozen=True)
class PromptInfo:
    """One prompt template as the server lists it."""

    name: str
    description: str
    arguments: tuple[PromptArgument, ...]


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one tool call.

    `value` is the result's structuredContent when the server sent one. Otherwise, when every
    content block is text, it is the texts joined by newlines, decoded as JSON when that text
    is a JSON object or array; other JSON such as `42` or `true` stays text. Otherwise it is a
    list of descriptive objects, one per block (see `describe_block`), or the single object
    when there is one block. It is None when there is no content at all.
    """

    value: JsonValue
    content: list[JsonValue]
    is_error: bool


def content_to_json(blocks: Sequence[Any]) -> list[JsonValue]:
    """Dump SDK content blocks to JSON objects in their wire form (camelCase keys)."""
    dumped: list[JsonValue] = []
    for block in blocks:
        dumped.append(block.model_dump(mode="json", by_alias=True, exclude_none=True))
    return dumped


def describe_block(block: Mapping[str, JsonValue]) -> JsonValue:
    """Summarise a content block for `ToolResult.value`; binary data is replaced by its size."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text")}
    if kind in ("image", "audio"):
        data = block.get("data")
        size = len(data) * 3 // 4 if isinstance(data, str) else 0
        return {"type": kind, "mime_type": block.get("mimeType"), "approx_bytes": size}
    if kind == "resource_link":
        return {"type": kind, "uri": block.get("uri"), "name": block.get("name"), "mime_type": block.get("mimeType")}
    if kind == "resource":
        resource = block.get("resource")
        if isinstance(resource, dict):
            described: dict[str, JsonValue] = {
                "type": kind,
                "uri": resource.get("uri"),
                "mime_type": resource.get("mimeType"),
            }
            if "text" in resource:
                described["text"] = resource["text"]
            return described
    return dict(block)


def result_value(structured: Mapping[str, Any] | None, content: list[JsonValue]) -> JsonValue:
    """Compute `ToolResult.value` from structuredContent and dumped content blocks."""
    if structured is not None:
        value: JsonValue = json.loads(json.dumps(structured))
        return value
    if not content:
        return None
    blocks = [block for block in content if isinstance(block, dict)]
    if len(blocks) == len(content) and all(block.get("type") == "text" for block in blocks):
        text = "\n".join(str(block.get("text", "")) for block in blocks)
        if text.strip().startswith(("{", "[")):
            try:
                decoded: JsonValue = json.loads(text)
            except json.JSONDecodeError:
                return text
            return decoded
        return text
    described = [describe_block(block) for block in blocks]
    return described[0] if len(described) == 1 else list(described)


def error_text(content: list[JsonValue]) -> str:
    """Join the text blocks of an error result; a placeholder when the tool sent no text."""
    texts = [str(block.get("text", "")) for block in content if isinstance(block, dict) and block.get("type") == "text"]
    return "\n".join(texts).strip() or "(the tool returned an error without a message)"
