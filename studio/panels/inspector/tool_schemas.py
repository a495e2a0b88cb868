"""Input and output schemas of the MCP tools that the store's tool cache lists, for forms and completion."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from studio.mcp.instances import list_instances
from studio.mcp.tool_cache import cached_tools, tool_catalog
from studio.model.output_shapes import ToolOutputSchemas
from studio.model.validation import ToolCatalog

logger = logging.getLogger(__name__)


def tool_schemas_from_store(store: Any) -> tuple[ToolCatalog | None, ToolOutputSchemas | None]:
    """Return the input schemas and output schemas of every cached tool, keyed by instance id.

    Returns ``(None, None)`` when ``store`` is None or its tool cache cannot be read; the inspector
    then edits arguments as JSON and completes no MCP result paths.
    """
    if store is None:
        return None, None
    try:
        catalog = tool_catalog(store)
        outputs: dict[str, dict[str, Mapping[str, Any]]] = {}
        for instance in list_instances(store):
            cached = cached_tools(store, instance.id)
            if cached is None:
                continue
            for tool in cached.tools:
                schema = tool.get("output_schema")
                if isinstance(schema, dict):
                    outputs.setdefault(instance.id, {})[str(tool.get("name"))] = schema
    except SQLAlchemyError:
        logger.exception("could not read the MCP tool cache, so tool arguments are edited as JSON")
        return None, None
    return catalog, ToolOutputSchemas(instances=outputs)
