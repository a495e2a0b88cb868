"""The tool list and handshake of each instance, cached in the store when the instance is started."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import JsonValue
from sqlalchemy import delete, insert, select

from studio.mcp.instances import list_instances
from studio.model.validation_tools import ToolCatalog
from studio.store import Store
from studio.store.mcp_tables import mcp_tool_cache

if TYPE_CHECKING:
    # Not imported at run time: the engine package imports studio.mcp, so this would be circular.
    from studio.engine.executors.mcp_model import ToolInfo


@dataclass(frozen=True)
class ToolEntry:
    """One tool of one instance, as the canvas quick-add and the validator list it."""

    instance_id: str
    instance_name: str
    server_url: str
    tool_name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True)
class CachedTools:
    """The tools and handshake of an instance's last start; `cached_at` is in Unix seconds."""

    tools: list[dict[str, JsonValue]]
    server_info: dict[str, JsonValue]
    cached_at: float


def tool_to_json(tool: ToolInfo) -> dict[str, JsonValue]:
    return {
        "name": tool.name,
        "description": tool.description,
        "input_schema": tool.input_schema,
        "output_schema": tool.output_schema,
    }


def cache_tools(
    store: Store, instance_id: str, tools: Sequence[ToolInfo], server_info: Mapping[str, JsonValue]
) -> None:
    """Replace the cached tool list and handshake of an instance."""
    with store.engine.begin() as connection:
        connection.execute(delete(mcp_tool_cache).where(mcp_tool_cache.c.instance_id == instance_id))
        connection.execute(
            insert(mcp_tool_cache).values(
                instance_id=instance_id,
                tools=[tool_to_json(tool) for tool in tools],
                server_info=dict(server_info),
                cached_at=time.time(),
            )
        )


def cached_tools(store: Store, instance_id: str) -> CachedTools | None:
    """Return the cached tools of an instance, or None if it was never started."""
    with store.engine.connect() as connection:
        row = (
            connection.execute(select(mcp_tool_cache).where(mcp_tool_cache.c.instance_id == instance_id))
            .mappings()
            .first()
        )
    if row is None:
        return None
    return CachedTools(list(row["tools"]), dict(row["server_info"]), float(row["cached_at"]))


def tool_entries(store: Store) -> list[ToolEntry]:
    """Return the cached tools of every instance of the project, by instance name then tool name."""
    entries: list[ToolEntry] = []
    for instance in list_instances(store):
        cached = cached_tools(store, instance.id)
        if cached is None:
            continue
        for tool in sorted(cached.tools, key=lambda item: str(item.get("name"))):
            schema = tool.get("input_schema")
            entries.append(
                ToolEntry(
                    instance_id=instance.id,
                    instance_name=instance.name,
                    server_url=instance.server_url,
                    tool_name=str(tool.get("name")),
                    description=str(tool.get("description") or ""),
                    input_schema=schema if isinstance(schema, dict) else {},
                )
            )
    return entries


def tool_catalog(store: Store) -> ToolCatalog:
    """Return a validator `ToolCatalog` of the cached tools, keyed by instance id."""
    instances: dict[str, dict[str, Mapping[str, Any]]] = {}
    for entry in tool_entries(store):
        instances.setdefault(entry.instance_id, {})[entry.tool_name] = entry.input_schema
    return ToolCatalog(instances=instances)
