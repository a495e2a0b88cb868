"""Builders of workflows for validation tests and benchmarks: small documents and large generated ones."""

from __future__ import annotations

import random
from typing import Any

from studio.model.document import workflow_from_data
from studio.model.validation import ToolCatalog
from studio.model.workflow import Workflow

SEARCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string"},
        "limit": {"type": "integer", "minimum": 1},
        "mode": {"enum": ["fast", "deep"]},
    },
    "required": ["query"],
    "additionalProperties": False,
}
CATALOG = ToolCatalog(
    instances={"fs": {"search": SEARCH_SCHEMA, "read_file": {"type": "object", "properties": {"path": {}}}}},
    servers={"https://tools.invalid/mcp": {"lookup": {"type": "object", "properties": {"key": {"type": "string"}}}}},
)


def workflow(steps: list[dict[str, Any]], edges: list[tuple[str, str]] = (), **extra: Any) -> Workflow:  # type: ignore[assignment]
    """Build a workflow document from step dicts and ``(source, target)`` edges."""
    data: dict[str, Any] = {
        "schema_version": 1,
        "name": "test",
        "input_schema": {"type": "object", "properties": {"topic": {"type": "string"}}},
        "steps": steps,
        "edges": [{"source": source, "target": target} for source, target in edges],
    }
    data.update(extra)
    return workflow_from_data(data)


def llm(step_id: str, prompt: str = "Write about {{input.topic}}", **config: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "llm_call", "config": {"model": "m", "prompt": prompt, **config}}


def mcp(step_id: str, tool: str = "search", **config: Any) -> dict[str, Any]:
    config.setdefault("instance_id", "fs")
    config.setdefault("arguments", {"query": "owls"})
    return {"id": step_id, "type": "mcp_call", "config": {"tool": tool, **config}}


def lua(step_id: str, inputs: dict[str, Any] | None = None, source: str = "return 1") -> dict[str, Any]:
    return {"id": step_id, "type": "lua_script", "config": {"source": source, "inputs": inputs or {}}}


def human(step_id: str, title: str = "Approve") -> dict[str, Any]:
    return {"id": step_id, "type": "human_task", "config": {"title": title}}


def for_each(
    step_id: str,
    items: Any,
    body: list[dict[str, Any]],
    body_edges: list[tuple[str, str]] = (),  # type: ignore[assignment]
    output: str | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "items": items,
        "steps": body,
        "edges": [{"source": source, "target": target} for source, target in body_edges],
    }
    if output is not None:
        config["output"] = output
    return {"id": step_id, "type": "for_each", "config": config}


def generated_workflow(total_steps: int, seed: int = 1) -> Workflow:
    """Return a valid workflow of about ``total_steps`` steps (bodies included), all joined together.

    Each new top-level step depends on a random earlier one, half the time by an edge and half the
    time by a template reference. Every 40th step is a for_each with a three-step body that reads
    ``{{item}}`` and the for_each's own upstream step.
    """
    rng = random.Random(seed)
    steps: list[dict[str, Any]] = [mcp("s0", arguments={"query": "{{input.topic}}", "limit": 10})]
    edges: list[tuple[str, str]] = []
    count = 1
    index = 1
    while count < total_steps:
        step_id = f"s{index}"
        parent = f"s{rng.randrange(index)}"
        by_reference = rng.random() < 0.5
        source = f"{{{{steps.{parent}.result}}}}" if by_reference else "plain text"
        kind = index % 40
        if kind == 0 and total_steps - count >= 4:
            body = [
                llm(f"{step_id}-a", f"Item {{{{index}}}}: {{{{item.text}}}} after {{{{steps.{parent}.result}}}}"),
                lua(f"{step_id}-b", {"text": f"{{{{steps.{step_id}-a.result}}}}"}, "return text"),
                human(f"{step_id}-c", f"Check {{{{steps.{step_id}-b.result}}}}"),
            ]
            body_edges = [(f"{step_id}-b", f"{step_id}-c")]
            steps.append(for_each(step_id, f"{{{{steps.{parent}.result.rows}}}}", body, body_edges))
            count += 4
        elif kind % 4 == 1:
            steps.append(mcp(step_id, arguments={"query": source, "limit": rng.randrange(1, 50), "mode": "fast"}))
            count += 1
        elif kind % 4 == 2:
            prompt = f"Summarise {source} for {{{{input.topic}}}}"
            steps.append(llm(step_id, prompt, output_schema={"type": "object"}))
            count += 1
        elif kind % 4 == 3:
            steps.append(lua(step_id, {"data": source, "n": index}, "return data"))
            count += 1
        else:
            steps.append(human(step_id, f"Review {source}"))
            count += 1
        if not by_reference or kind == 0:
            edges.append((parent, step_id))
        index += 1
    return workflow(steps, edges, name=f"generated {total_steps}")
