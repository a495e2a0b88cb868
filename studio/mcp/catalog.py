"""The MCP server catalog: servers shipped with the studio plus the project's custom stdio and remote entries."""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import and_, delete, insert, select

from studio.mcp.errors import McpConfigError, McpNotFoundError, McpProbeError
from studio.model.shared_graph import secret_in_server_url
from studio.store import Store, new_id
from studio.store import tables as t
from studio.store.mcp_tables import mcp_catalog_entries

logger = logging.getLogger(__name__)

TRANSPORTS = ("stdio", "http", "sse")
"""Catalog transports: a subprocess on stdio, streamable HTTP, or the legacy HTTP+SSE transport."""
STUDIO_TOOLS_COMMAND = "studio-tools"
"""Command that means the studio's own tool server, run with the studio's Python interpreter."""
BUILTIN_PREFIX = "builtin:"
PROBE_TIMEOUT_S = 10.0
_MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class CatalogEntry:
    """How to start or reach one MCP server, without any per-project settings or secrets."""

    id: str
    name: str
    transport: str
    command: str | None = None
    args: tuple[str, ...] = ()
    cwd: str | None = None
    url: str | None = None
    description: str = ""
    builtin: bool = False
    env_names: tuple[str, ...] = field(default=())
    """Environment variables the server reads, shown as hints when configuring an instance."""

    @property
    def launch_label(self) -> str:
        """The command line or URL, for lists; a URL loses its query, which may carry a token."""
        if self.transport == "stdio":
            return " ".join([self.command or "", *self.args]).strip()
        return (self.url or "").split("?", 1)[0]


BUILTIN_ENTRIES: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        id=f"{BUILTIN_PREFIX}{STUDIO_TOOLS_COMMAND}",
        name="Studio tools",
        transport="stdio",
        command=STUDIO_TOOLS_COMMAND,
        description="Offline text, regex, file and diagnostic tools shipped with the studio. "
        "Add --root DIR to the arguments to allow the file tools in DIR.",
        builtin=True,
        env_names=("STUDIO_TOOLS_ROOT",),
    ),
)


def check_entry_fields(
    name: str, transport: str, command: str | None, args: Sequence[str], cwd: str | None, url: str | None
) -> None:
    """Raise McpConfigError naming the first invalid field of a catalog entry or instance."""
    if not name or not name.strip() or len(name) > _MAX_NAME_LENGTH:
        raise McpConfigError(f"invalid server name {name!r}; give 1 to {_MAX_NAME_LENGTH} characters")
    if transport not in TRANSPORTS:
        raise McpConfigError(f"invalid transport {transport!r}; use one of {', '.join(TRANSPORTS)}")
    if not all(isinstance(arg, str) for arg in args):
        raise McpConfigError(f"the arguments of server {name!r} must all be strings; quote numbers and flags")
    if transport == "stdio":
        if not command or not command.strip():
            raise McpConfigError(f"stdio server {name!r} has no command; set the executable that starts it")
        if url:
            raise McpConfigError(f"stdio server {name!r} has a URL as well as a command; remove the URL")
        _check_no_plain_secret(name, transport, command, args, url)
        return
    if not url or not url.startswith(("http://", "https://")):
        shown = (url or "").split("?", 1)[0]
        raise McpConfigError(
            f"remote server {name!r} needs an http:// or https:// URL, got {shown!r}; "
            "set the server's endpoint, for example http://127.0.0.1:8000/mcp"
        )
    if command or cwd:
        raise McpConfigError(f"remote server {name!r} has a command or working directory; remove them or use stdio")
    _check_no_plain_secret(name, transport, command, args, url)


def plain_secret(transport: str, command: str | None, args: Sequence[str], url: str | None) -> str | None:
    """Return a sentence naming where launch fields carry a literal secret, or None.

    Arguments and URLs are stored and exported in plain text, unlike bound env variables and
    headers. The sentence names the argument or query parameter, never the secret.
    """
    if transport == "stdio":
        where = secret_in_server_url("stdio:" + shlex.join([command or "", *args]))
        hint = "arguments are stored in plain text; pass it in an env variable"
    else:
        where = secret_in_server_url(url or "")
        hint = "URLs are stored in plain text; pass it in a header"
    return None if where is None else f"{where} looks like a secret, and {hint}"


def _check_no_plain_secret(
    name: str, transport: str, command: str | None, args: Sequence[str], url: str | None
) -> None:
    problem = plain_secret(transport, command, args, url)
    if problem is not None:
        raise McpConfigError(f"server {name!r}: {problem} bound to a connection ('studio mcp bind')")


def _entry_from_row(row: Mapping[str, Any]) -> CatalogEntry:
    args = row.get("args") or []
    return CatalogEntry(
        id=str(row["id"]),
        name=str(row["name"]),
        transport=str(row["transport"]),
        command=None if row.get("command") is None else str(row["command"]),
        args=tuple(str(arg) for arg in args) if isinstance(args, list) else (),
        cwd=None if row.get("cwd") is None else str(row["cwd"]),
        url=None if row.get("url") is None else str(row["url"]),
        description=str(row.get("description") or ""),
    )


def list_entries(store: Store) -> list[CatalogEntry]:
    """Return the built-in entries, then the project's custom entries by name."""
    query = (
        select(mcp_catalog_entries)
        .where(mcp_catalog_entries.c.project_id == store.project_id)
        .order_by(mcp_catalog_entries.c.name)
    )
    with store.engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return [*BUILTIN_ENTRIES, *(_entry_from_row(dict(row)) for row in rows)]


def get_entry(store: Store, id_or_name: str) -> CatalogEntry:
    """Return the entry with this id, else the one with this name.

    Raises:
        McpNotFoundError: no entry matches.
    """
    entries = list_entries(store)
    for entry in entries:
        if entry.id == id_or_name:
            return entry
    for entry in entries:
        if entry.name == id_or_name:
            return entry
    raise McpNotFoundError(
        f"MCP catalog entry {id_or_name!r} was not found; list the entries with 'studio mcp catalog'"
    )


def add_entry(
    store: Store,
    name: str,
    transport: str,
    *,
    command: str | None = None,
    args: Sequence[str] = (),
    cwd: str | None = None,
    url: str | None = None,
    description: str = "",
) -> CatalogEntry:
    """Create a custom catalog entry for the store's project.

    Raises:
        McpConfigError: an invalid field, or a name that another entry has.
    """
    check_entry_fields(name, transport, command, args, cwd, url)
    if any(entry.name == name for entry in list_entries(store)):
        raise McpConfigError(f"an MCP catalog entry named {name!r} exists already; choose another name")
    entry_id = new_id()
    with store.engine.begin() as connection:
        same_name = connection.execute(
            select(mcp_catalog_entries.c.id).where(
                and_(mcp_catalog_entries.c.project_id == store.project_id, mcp_catalog_entries.c.name == name)
            )
        ).first()
        if same_name is not None:
            raise McpConfigError(f"an MCP catalog entry named {name!r} exists already; choose another name")
        connection.execute(
            insert(mcp_catalog_entries).values(
                id=entry_id,
                workspace_id=store.workspace_id,
                project_id=store.project_id,
                name=name,
                transport=transport,
                command=command,
                args=list(args),
                cwd=cwd,
                url=url,
                description=description,
                created_at=time.time(),
            )
        )
    logger.info("Added MCP catalog entry %s (%s, %s)", entry_id, name, transport)
    return get_entry(store, entry_id)


def delete_entry(store: Store, id_or_name: str) -> None:
    """Delete a custom entry.

    Raises:
        McpNotFoundError: no entry matches.
        McpConfigError: the entry is built in, or instances still use it.
    """
    entry = get_entry(store, id_or_name)
    if entry.builtin:
        raise McpConfigError(f"catalog entry {entry.name!r} is shipped with the studio and cannot be deleted")
    with store.engine.begin() as connection:
        users = (
            connection.execute(
                select(t.mcp_instances.c.name).where(
                    and_(
                        t.mcp_instances.c.catalog_entry_id == entry.id, t.mcp_instances.c.project_id == store.project_id
                    )
                )
            )
            .scalars()
            .all()
        )
        if users:
            raise McpConfigError(
                f"catalog entry {entry.name!r} is used by instances {', '.join(sorted(users))}; delete those first"
            )
        connection.execute(delete(mcp_catalog_entries).where(mcp_catalog_entries.c.id == entry.id))
    logger.info("Deleted MCP catalog entry %s (%s)", entry.id, entry.name)


# -- remote transport detection -------------------------------------------------------------------

_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "workflow-studio-probe", "version": "0.1.0"},
    },
}


async def detect_remote_transport(
    url: str, headers: Mapping[str, str] | None = None, *, timeout_s: float = PROBE_TIMEOUT_S
) -> str:
    """Probe a remote MCP URL and return 'http' (streamable HTTP) or 'sse' (legacy HTTP+SSE).

    It POSTs an ``initialize`` request, as streamable HTTP expects. When that is rejected it GETs the
    URL asking for an event stream, which a legacy SSE endpoint answers with ``text/event-stream``.
    ``headers`` may hold secrets; they are sent but never appear in messages.

    Raises:
        McpProbeError: the server is unreachable, requires authentication, serves HTML, or is not MCP.
    """
    shown = url.split("?", 1)[0]
    request_headers = {**dict(headers or {}), "Accept": "application/json, text/event-stream"}
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=True) as client:
            response = await client.post(url, json=_INITIALIZE, headers=request_headers)
            await response.aread()
            _check_auth(response, shown)
            kind = _content_kind(response)
            if response.is_success and kind in ("json", "sse"):
                await _end_probe_session(client, url, request_headers, response)
                return "http"
            rejected = response.status_code in (400, 404, 405) or kind == "html"
            if rejected and await _answers_event_stream(client, url, headers, shown):
                return "sse"
            raise McpProbeError(_not_mcp_message(shown, response, kind))
    except httpx.TimeoutException:
        raise McpProbeError(
            f"the server at {shown} did not answer within {timeout_s} s; check that it is running"
        ) from None
    except httpx.TransportError as error:
        raise McpProbeError(
            f"could not connect to {shown}: {type(error).__name__}; check that the server is running and the URL"
        ) from None


def _content_kind(response: httpx.Response) -> str:
    content_type = response.headers.get("content-type", "").lower()
    if "text/event-stream" in content_type:
        return "sse"
    if "json" in content_type:
        return "json"
    if "html" in content_type:
        return "html"
    return content_type or "none"


def _check_auth(response: httpx.Response, shown: str) -> None:
    if response.status_code in (401, 403):
        raise McpProbeError(
            f"the server at {shown} rejected the request with HTTP {response.status_code} "
            f"({'authentication required' if response.status_code == 401 else 'forbidden'}); bind a connection "
            "to the Authorization header of the instance, or check that the bound secret is valid"
        )


def _not_mcp_message(shown: str, response: httpx.Response, kind: str) -> str:
    if kind == "html":
        return (
            f"the server at {shown} returned an HTML page (HTTP {response.status_code}) instead of MCP; "
            "check the URL, which for streamable HTTP usually ends in /mcp and for SSE in /sse"
        )
    return (
        f"the server at {shown} is not an MCP endpoint: HTTP {response.status_code} with content type "
        f"{kind!r}; check the URL, which usually ends in /mcp (streamable HTTP) or /sse (legacy SSE)"
    )


async def _answers_event_stream(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str] | None, shown: str
) -> bool:
    stream_headers = {**dict(headers or {}), "Accept": "text/event-stream"}
    async with client.stream("GET", url, headers=stream_headers) as response:
        _check_auth(response, shown)
        # Only the headers are read: an SSE endpoint keeps the stream open for as long as the client stays.
        return response.is_success and _content_kind(response) == "sse"


async def _end_probe_session(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str], response: httpx.Response
) -> None:
    session_id = response.headers.get("mcp-session-id")
    if session_id is None:
        return
    try:
        await client.delete(url, headers={**dict(headers), "Mcp-Session-Id": session_id})
    except httpx.HTTPError as error:
        logger.debug("ending the probe session at %s failed: %s", url.split("?", 1)[0], type(error).__name__)
