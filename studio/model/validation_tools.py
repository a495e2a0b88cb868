"""Checks of MCP tool calls against the tools' input schemas, when the tools are known."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import referencing.exceptions
from jsonschema.protocols import Validator

from studio.model.validation_findings import Finding, canonical, error, quote_list, shorten, suggestion, warning
from studio.model.validation_steps import validator_class_for
from studio.model.workflow import McpCallStep

logger = logging.getLogger(__name__)

ToolSchemas = Mapping[str, Mapping[str, Any]]
"""Tool name to the tool's input JSON Schema, as a server lists them."""


@dataclass(frozen=True)
class ToolCatalog:
    """Input schemas of the tools of known MCP servers, for checking ``mcp_call`` steps.

    ``instances`` maps a local instance id to its tools and ``servers`` maps a server URL to its tools.
    A step is looked up by its ``instance_id`` first, then by its ``server_url``. A server missing
    from both maps is unknown, and its steps' tool names and arguments are not checked.
    """

    instances: Mapping[str, ToolSchemas] = field(default_factory=dict)
    servers: Mapping[str, ToolSchemas] = field(default_factory=dict)

    def tools_for(self, instance_id: str | None, server_url: str | None) -> tuple[str, ToolSchemas] | None:
        """Return ``(server label, tools)`` for a step's server, or None if the catalog does not list it."""
        if instance_id and instance_id in self.instances:
            return instance_id, self.instances[instance_id]
        if server_url and server_url in self.servers:
            return server_url, self.servers[server_url]
        return None

    def input_schema(self, instance_id: str | None, server_url: str | None, tool: str) -> Mapping[str, Any] | None:
        """Return the input schema of ``tool`` on the step's server, or None if it is not known."""
        found = self.tools_for(instance_id, server_url)
        return None if found is None else found[1].get(tool)


def compiled_validator(schema: Mapping[str, Any]) -> Validator | None:
    """Return a validator for a tool's input schema, or None if the schema itself is invalid."""
    return _compile(canonical(schema))


@functools.lru_cache(maxsize=256)
def _compile(schema_json: str) -> Validator | None:
    # Keyed by canonical JSON so that equal schemas compile once, because check_schema() took 0.4 ms
    # for a small schema with jsonschema 4.26 here, and more for larger ones.
    schema = json.loads(schema_json)
    validator_class = validator_class_for(schema)
    if validator_class is None:
        logger.debug("tool input schema declares an unknown $schema, its arguments are not checked")
        return None
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as problem:
        logger.debug("tool input schema is invalid, its arguments are not checked: %s", problem.message)
        return None
    return validator_class(schema)


def contains_template(value: Any) -> bool:
    """Return whether a JSON value contains a ``{{...}}`` template anywhere, so its type is known only at run time."""
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(contains_template(item) for item in value.values())
    if isinstance(value, list):
        return any(contains_template(item) for item in value)
    return False


def check_tool_call(step: McpCallStep, catalog: ToolCatalog) -> list[Finding]:
    """Check the tool name and literal arguments of ``step`` against the catalog's input schema."""
    config = step.config
    found = catalog.tools_for(config.instance_id, config.server_url)
    if found is None or not config.tool:
        return []
    server, tools = found
    schema = tools.get(config.tool)
    if schema is None:
        offered = quote_list(sorted(tools)) or "no tools"
        return [
            error(
                "unknown-tool",
                f"step '{step.id}' calls tool '{config.tool}', which server '{server}' does not offer."
                f"{suggestion(config.tool, tools)} The server offers: {offered}.",
                step.id,
                "config.tool",
            )
        ]
    findings = _check_argument_names(step, schema)
    findings.extend(_check_argument_values(step, schema))
    return findings


def _check_argument_names(step: McpCallStep, schema: Mapping[str, Any]) -> list[Finding]:
    tool = step.config.tool
    arguments = step.config.arguments
    properties = schema.get("properties")
    known: Mapping[str, Any] = properties if isinstance(properties, Mapping) else {}
    strict = schema.get("additionalProperties", True) is False
    findings: list[Finding] = []
    for name in arguments:
        if name in known:
            continue
        message = (
            f"tool '{tool}' has no argument '{name}'.{suggestion(name, known)} "
            f"Its arguments are: {quote_list(known) or 'none'}. Rename or remove '{name}'."
        )
        make = error if strict else warning
        findings.append(make("tool-arguments", message, step.id, f"config.arguments.{name}"))
    required = schema.get("required")
    for name in required if isinstance(required, list) else []:
        if isinstance(name, str) and name not in arguments:
            findings.append(
                error(
                    "tool-arguments",
                    f"tool '{tool}' requires the argument '{name}'; add it to the step's arguments.",
                    step.id,
                    "config.arguments",
                )
            )
    return findings


def _check_argument_values(step: McpCallStep, schema: Mapping[str, Any]) -> list[Finding]:
    validator = compiled_validator(schema)
    if validator is None:
        return []
    # Template values are left out: their type is only known once the run renders them.
    literal = {name: value for name, value in step.config.arguments.items() if not contains_template(value)}
    try:
        problems = list(validator.iter_errors(literal))
    except referencing.exceptions.Unresolvable as unresolvable:
        # The server's schema is broken, which the workflow's author cannot fix, so the values go unchecked.
        logger.debug("input schema of tool %s has an unresolvable $ref: %s", step.config.tool, unresolvable)
        return []
    findings: list[Finding] = []
    for problem in problems:
        if not problem.path:
            continue  # Names and required arguments are checked above with better messages.
        name = str(problem.path[0])
        location = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem.path)
        findings.append(
            error(
                "tool-arguments",
                f"argument '{name}' of tool '{step.config.tool}' is invalid: {_describe(problem)}. "
                "Change the value to match the tool's input schema.",
                step.id,
                f"config.arguments{location}",
            )
        )
    return findings


def _describe(problem: jsonschema.ValidationError) -> str:
    value = shorten(problem.instance)
    if problem.validator == "type":
        return f"the value {value} is not of type {shorten(problem.validator_value)}"
    if problem.validator == "enum":
        return f"the value {value} is not one of {shorten(problem.validator_value, 120)}"
    text = str(problem.message)
    return text if len(text) <= 160 else text[:159] + "…"
