"""Usage lookup for connections: workflow steps and credential slots, MCP instance bindings, and recorded links."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import MetaData, Table, delete, insert, inspect, select

from studio.store import Store
from studio.store.connection_tables import connection_checks, connection_oauth, connection_usage_links
from studio.store.tables import metadata

logger = logging.getLogger(__name__)

UsageKind = Literal["workflow", "mcp_instance", "link"]
# Keys under which a workflow document names a connection: a step's config.connection_id, an llm_call
# "connection" field, or a credential slot binding such as {"slot": "github", "connection_id": ...}.
_REFERENCE_KEYS = ("connection_id", "connection")
_OWN_TABLES = {connection_oauth.name, connection_checks.name, connection_usage_links.name, "connections"}


@dataclass(frozen=True)
class ConnectionUsage:
    """One owner that uses a connection."""

    kind: UsageKind
    owner_id: str
    owner_name: str
    detail: str
    step_ids: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        if self.kind == "workflow":
            return f"workflow '{self.owner_name}' ({self.detail}, steps {', '.join(self.step_ids)})"
        if self.kind == "mcp_instance":
            return f"MCP instance '{self.owner_name}' ({self.detail})"
        return f"{self.owner_name} ({self.detail})"


def where_used(store: Store, connection_id: str) -> list[ConnectionUsage]:
    """List the workflows (drafts and versions), MCP instances and linked owners that use a connection."""
    usages = list(_workflow_usages(store, connection_id))
    usages.extend(_instance_usages(store, connection_id))
    usages.extend(_linked_usages(store, connection_id))
    return usages


def link_connection(
    store: Store,
    connection_id: str,
    owner_kind: str,
    owner_id: str,
    owner_name: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Record that an owner outside workflow documents (for example an MCP instance binding) uses a connection."""
    if not owner_kind or not owner_id:
        raise ValueError(f"invalid usage link owner {owner_kind!r}/{owner_id!r}; give a non-empty kind and id")
    with store.engine.begin() as db:
        _delete_link(db, connection_id, owner_kind, owner_id)
        db.execute(
            insert(connection_usage_links).values(
                connection_id=connection_id,
                owner_kind=owner_kind,
                owner_id=owner_id,
                owner_name=owner_name,
                detail=dict(detail or {}),
                linked_at=time.time(),
            )
        )


def unlink_connection(store: Store, connection_id: str, owner_kind: str, owner_id: str) -> None:
    """Remove a link recorded with :func:`link_connection`; no error when there is none."""
    with store.engine.begin() as db:
        _delete_link(db, connection_id, owner_kind, owner_id)


def _delete_link(db: Any, connection_id: str, owner_kind: str, owner_id: str) -> None:
    links = connection_usage_links.c
    db.execute(
        delete(connection_usage_links).where(
            (links.connection_id == connection_id) & (links.owner_kind == owner_kind) & (links.owner_id == owner_id)
        )
    )


def _workflow_usages(store: Store, connection_id: str) -> Iterator[ConnectionUsage]:
    for document in store.workflow_documents():
        step_ids = tuple(sorted(set(_referencing_steps(document["document"], connection_id, None))))
        if not step_ids:
            continue
        version = document["version"]
        if version is None:
            where = "draft"
        elif version > 0:
            where = f"version {version}"
        else:
            where = "test snapshot"
        yield ConnectionUsage(
            kind="workflow",
            owner_id=str(document["workflow_id"]),
            owner_name=str(document["workflow_name"]),
            detail=where,
            step_ids=step_ids,
        )


def _referencing_steps(value: Any, connection_id: str, step_id: str | None) -> Iterator[str]:
    # Walk the whole document so steps nested in for_each bodies and credential slot lists are found.
    if isinstance(value, Mapping):
        if "type" in value and "id" in value:
            step_id = str(value["id"])
        if any(value.get(key) == connection_id for key in _REFERENCE_KEYS):
            yield step_id or "(workflow)"
        for item in value.values():
            yield from _referencing_steps(item, connection_id, step_id)
    elif isinstance(value, list):
        for item in value:
            yield from _referencing_steps(item, connection_id, step_id)


def _instance_usages(store: Store, connection_id: str) -> Iterator[ConnectionUsage]:
    instances = metadata.tables.get("mcp_instances")
    names: dict[str, str] = {}
    if instances is not None:
        with store.engine.connect() as db:
            rows = [dict(row._mapping) for row in db.execute(select(instances)).all()]
        for row in rows:
            names[str(row["id"])] = str(row.get("name") or row["id"])
            fields = sorted(key for key, value in row.items() if key != "id" and _mentions(value, connection_id))
            if fields:
                yield ConnectionUsage("mcp_instance", str(row["id"]), names[str(row["id"])], f"in {', '.join(fields)}")
    # Binding tables (any table with connection_id and instance_id columns) name the instance directly.
    # They are read from the database schema, so this module needs no import of the modules that define them.
    for table in _binding_tables(store):
        with store.engine.connect() as db:
            rows = [dict(r._mapping) for r in db.execute(select(table).where(table.c.connection_id == connection_id))]
        for row in rows:
            instance_id = str(row["instance_id"])
            yield ConnectionUsage("mcp_instance", instance_id, names.get(instance_id, instance_id), _binding_detail(row))


def _binding_tables(store: Store) -> list[Table]:
    schema = inspect(store.engine)
    tables = []
    for name in schema.get_table_names():
        columns = {column["name"] for column in schema.get_columns(name)}
        if name not in _OWN_TABLES and {"connection_id", "instance_id"} <= columns:
            tables.append(Table(name, MetaData(), autoload_with=store.engine))
    return tables


def _binding_detail(row: Mapping[str, Any]) -> str:
    target, name = row.get("target"), row.get("name")
    if target == "env" and name:
        return f"environment variable {name}"
    if target == "header" and name:
        return f"header {name}"
    return "binding"


def _mentions(value: Any, connection_id: str) -> bool:
    # Connection ids are UUIDs, so a substring match in a JSON dump finds references in any format.
    if value is None:
        return False
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return connection_id in text


def _linked_usages(store: Store, connection_id: str) -> Iterator[ConnectionUsage]:
    links = connection_usage_links
    with store.engine.connect() as db:
        rows = db.execute(select(links).where(links.c.connection_id == connection_id).order_by(links.c.owner_name))
        for row in rows:
            detail = ", ".join(f"{key} {value}" for key, value in (row.detail or {}).items()) or row.owner_kind
            kind: UsageKind = "mcp_instance" if row.owner_kind == "mcp_instance" else "link"
            yield ConnectionUsage(kind, row.owner_id, row.owner_name, detail)
