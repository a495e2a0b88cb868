"""Checks that look at one step alone: required config, template syntax, schemas and Lua input names.

The result of :func:`analyse_step` depends only on the step's own content (not on its place in the
workflow or on other steps), which lets the incremental validator cache it per step content.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from studio.model.templates import Reference, TemplateSyntaxError, parse_template
from studio.model.validation_findings import Finding, canonical, error, shorten
from studio.model.workflow import (
    AnyStep,
    ForEachStep,
    HumanTaskStep,
    LlmCallStep,
    LuaScriptStep,
    McpCallStep,
    template_fields,
)

LUA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LUA_KEYWORDS = frozenset(
    {
        "and",
        "break",
        "do",
        "else",
        "elseif",
        "end",
        "false",
        "for",
        "function",
        "goto",
        "if",
        "in",
        "local",
        "nil",
        "not",
        "or",
        "repeat",
        "return",
        "then",
        "true",
        "until",
        "while",
    }
)


@dataclass(frozen=True)
class FieldReference:
    """A reference found in one templated field of a step."""

    field_path: str
    reference: Reference


@dataclass(frozen=True)
class StepAnalysis:
    """References and local findings of one step, derived from the step alone."""

    references: tuple[FieldReference, ...]
    findings: tuple[Finding, ...]


def analyse_step(step: AnyStep) -> StepAnalysis:
    """Parse the templates of ``step`` and run every check that needs no other step."""
    findings: list[Finding] = []
    references: list[FieldReference] = []
    for field_path, value in template_fields(step):
        if not isinstance(value, str) or ("{{" not in value and "}}" not in value):
            continue
        try:
            template = parse_template(value)
        except TemplateSyntaxError as problem:
            findings.append(error("template-syntax", f"step '{step.id}', {field_path}: {problem}", step.id, field_path))
            continue
        references.extend(FieldReference(field_path, reference) for reference in template.references)
    findings.extend(_check_config(step))
    return StepAnalysis(tuple(references), tuple(findings))


def _check_config(step: AnyStep) -> list[Finding]:
    if isinstance(step, McpCallStep):
        return _check_mcp_call(step)
    if isinstance(step, LlmCallStep):
        return _check_llm_call(step)
    if isinstance(step, HumanTaskStep):
        return _check_human_task(step)
    if isinstance(step, LuaScriptStep):
        return _check_lua_script(step)
    return _check_for_each(step)


def _missing(step: AnyStep, field_path: str, what: str) -> Finding:
    message = f"step '{step.id}' ({step.type}) has no {what}; set {field_path}."
    return error("missing-config", message, step.id, field_path)


def _check_mcp_call(step: McpCallStep) -> list[Finding]:
    findings: list[Finding] = []
    if not step.config.tool.strip():
        findings.append(_missing(step, "config.tool", "tool name"))
    if not (step.config.instance_id or "").strip() and not (step.config.server_url or "").strip():
        findings.append(
            error(
                "missing-config",
                f"step '{step.id}' (mcp_call) names no MCP server; set config.instance_id to a local "
                "instance or config.server_url to the server's URL.",
                step.id,
                "config.instance_id",
            )
        )
    problem = _server_url_problem(step.config.server_url or "")
    if problem is not None:
        findings.append(error("invalid-server-url", f"step '{step.id}': {problem}", step.id, "config.server_url"))
    return findings


def _server_url_problem(server_url: str) -> str | None:
    # Mirrors how the engine parses server_url. The value is not repeated in full, because a
    # stdio command line or a URL may carry a token.
    if not server_url.strip() or server_url.startswith(("http://", "https://")):
        return None
    if not server_url.startswith("stdio:"):
        scheme = server_url.partition(":")[0][:20]
        return (
            f"config.server_url starting with '{scheme}' is not supported; "
            "use http(s)://host/path or stdio:<command> <args>"
        )
    try:
        words = shlex.split(server_url[len("stdio:") :])
    except ValueError as parse_error:
        return f"config.server_url is not a valid command line ({parse_error}); check its quotes"
    if not words:
        return "config.server_url 'stdio:' names no command; write stdio:<command> <args>"
    return None


def _check_llm_call(step: LlmCallStep) -> list[Finding]:
    findings: list[Finding] = []
    # Without a connection, the project's default connection (its default_model) or the local model
    # serves an empty model. A named connection may have a default_model too, but validation has no
    # store to look it up, so it requires the model whenever the step names a connection.
    if (step.config.connection_id or "").strip() and not step.config.model.strip():
        findings.append(
            error(
                "missing-config",
                f"step '{step.id}' (llm_call) names connection '{step.config.connection_id}' but no model; "
                "set config.model, or clear config.connection_id to use the project's default LLM.",
                step.id,
                "config.model",
            )
        )
    if not step.config.prompt.strip():
        findings.append(_missing(step, "config.prompt", "prompt"))
    findings.extend(_output_schema_findings(step))
    return findings


def _output_schema_findings(step: LlmCallStep | LuaScriptStep) -> list[Finding]:
    if step.config.output_schema is None:
        return []
    problem = schema_problem(canonical(step.config.output_schema))
    if problem is None:
        return []
    message, location = problem
    return [
        error(
            "invalid-output-schema",
            f"the output schema of step '{step.id}' is not a valid JSON Schema: {message}. Fix the schema or clear it.",
            step.id,
            "config.output_schema" + location,
        )
    ]


def _check_human_task(step: HumanTaskStep) -> list[Finding]:
    if not step.config.title.strip():
        return [_missing(step, "config.title", "title")]
    return []


def _check_lua_script(step: LuaScriptStep) -> list[Finding]:
    findings: list[Finding] = []
    if not step.config.source.strip():
        findings.append(_missing(step, "config.source", "Lua source"))
    for name in step.config.inputs:
        if LUA_NAME.match(name) and name not in LUA_KEYWORDS:
            continue
        reason = "is a Lua keyword" if name in LUA_KEYWORDS else "is not a valid Lua identifier"
        findings.append(
            error(
                "lua-input-name",
                f"Lua input name '{name}' of step '{step.id}' {reason}; use letters, digits and '_', "
                "starting with a letter or '_' (for example 'rows').",
                step.id,
                f"config.inputs.{name}",
            )
        )
    findings.extend(_output_schema_findings(step))
    return findings


def _check_for_each(step: ForEachStep) -> list[Finding]:
    items = step.config.items
    if items is None:
        return [_missing(step, "config.items", "items")]
    if isinstance(items, list):
        return []
    if isinstance(items, str) and "{{" in items:
        try:
            template = parse_template(items)
        except TemplateSyntaxError:
            return []  # Reported as template-syntax.
        if template.is_single_reference and template.references[0].root not in ("index", "run"):
            return []
    return [
        error(
            "invalid-items",
            f"the items of for_each '{step.id}' are {shorten(items)}, which is not a list; set config.items "
            "to a JSON list or to one template alone, such as {{steps.fetch.result.rows}}.",
            step.id,
            "config.items",
        )
    ]


_DEFAULT_VALIDATOR: type[Validator] = jsonschema.Draft202012Validator


def validator_class_for(schema: Mapping[str, Any]) -> type[Validator] | None:
    """Return the validator class for the schema's ``$schema`` (draft 2020-12 if absent), or None if unknown."""
    declared = schema.get("$schema")
    if declared is None:
        return _DEFAULT_VALIDATOR
    if not isinstance(declared, str):
        return None
    # Without a default, jsonschema falls back to its latest draft with a DeprecationWarning instead.
    found: type[Validator] | None = validator_for(schema, default=None)
    return found


@functools.lru_cache(maxsize=512)
def schema_problem(schema_json: str) -> tuple[str, str] | None:
    """Return ``(message, location)`` if the JSON Schema text is invalid, else None.

    ``location`` is a path suffix such as ``.properties.age.type`` (empty for the root). The key is
    the canonical JSON of the schema, so equal schemas are checked once.
    """
    schema: Any = json.loads(schema_json)
    if not isinstance(schema, dict):
        return f"expected a JSON object, found {shorten(schema)}", ""
    validator_class = validator_class_for(schema)
    if validator_class is None:
        return (
            f"$schema {shorten(schema['$schema'])} is not a JSON Schema draft that jsonschema knows; use "
            '"https://json-schema.org/draft/2020-12/schema" or leave $schema out',
            ".$schema",
        )
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as problem:
        location = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem.absolute_path)
        return problem.message, location
    external = _external_reference(schema, "")
    if external is not None:
        reference, location = external
        # jsonschema 4.26 fetches an unknown http(s) $ref with urllib while validating.
        return (
            f"$ref {shorten(reference)} points outside the schema; make the schema self-contained and use "
            "a local reference such as '#/$defs/name'",
            location,
        )
    return None


_DATA_KEYWORDS = frozenset({"const", "default", "enum", "examples"})
"""Keywords whose values are instance data, where a "$ref" key is not a reference."""


def _external_reference(value: Any, location: str) -> tuple[str, str] | None:
    """Return ``(reference, location)`` of the first ``$ref`` that does not start with '#', else None."""
    if isinstance(value, list):
        items: list[tuple[str, Any]] = [(f"{location}[{index}]", item) for index, item in enumerate(value)]
    elif isinstance(value, dict):
        reference = value.get("$ref")
        if isinstance(reference, str) and not reference.startswith("#"):
            return reference, f"{location}.$ref"
        items = [(f"{location}.{key}", item) for key, item in value.items() if key not in _DATA_KEYWORDS]
    else:
        return None
    for item_location, item in items:
        found = _external_reference(item, item_location)
        if found is not None:
            return found
    return None
