"""MCP elicitation as human tasks: the requested schema as form fields, and the answer back as content.

An elicitation task is a row of the human task table whose ``context`` has ``kind: "elicitation"``.
Its decisions are the MCP actions ``accept``, ``decline`` and ``cancel``. The human task words
``approve`` and ``reject`` mean ``accept`` and ``decline``, so existing task clients can answer it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import JsonValue

from studio.engine.executors.mcp_callbacks import ElicitationAnswer, ElicitationRequest

ELICITATION_KIND = "elicitation"
ELICITATION_DECISIONS = ("accept", "decline", "cancel")
DECISION_STATUSES = {"accept": "accepted", "decline": "declined", "cancel": "cancelled"}
"""Task status stored for each elicitation decision."""

_DECISION_ALIASES = {"approve": "accept", "reject": "decline"}
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class ElicitationSchemaError(ValueError):
    """The server's requested schema is not the flat object of primitive fields that MCP allows."""


def task_kind(context: JsonValue) -> str:
    """Return the kind stored in a task's context: ``elicitation``, or ``human_task`` for other tasks."""
    if isinstance(context, dict) and context.get("kind") == ELICITATION_KIND:
        return ELICITATION_KIND
    return "human_task"


def normalize_decision(decision: str) -> Literal["accept", "decline", "cancel"]:
    """Map a decision given for an elicitation task to its MCP action; raise ValueError naming the choices."""
    action = _DECISION_ALIASES.get(decision, decision)
    if action == "accept":
        return "accept"
    if action == "decline":
        return "decline"
    if action == "cancel":
        return "cancel"
    raise ValueError(f"decision '{decision}' is invalid for an elicitation task; use 'accept', 'decline' or 'cancel'")


def fields_from_schema(schema: Mapping[str, JsonValue]) -> tuple[list[dict[str, JsonValue]], dict[str, str]]:
    """Convert a requested schema into human task form fields.

    Returns the fields and a map from each field name to its schema property name, which differ
    only when the property name is not a valid field name.

    Raises:
        ElicitationSchemaError: The schema is not an object of string, number, integer, boolean or
            string-array properties.
    """
    if schema.get("type", "object") != "object":
        raise ElicitationSchemaError(f"the requested schema must have type 'object', got {schema.get('type')!r}")
    properties = schema.get("properties") or {}
    if not isinstance(properties, dict):
        raise ElicitationSchemaError("the requested schema's 'properties' must be an object")
    required = schema.get("required") or []
    required_names = {str(name) for name in required} if isinstance(required, list) else set()
    fields: list[dict[str, JsonValue]] = []
    names: dict[str, str] = {}
    for prop_name, prop in properties.items():
        if not isinstance(prop, dict):
            raise ElicitationSchemaError(f"property '{prop_name}' of the requested schema must be an object")
        name = _field_name(prop_name, names)
        names[name] = prop_name
        form_field = _field(name, prop_name, prop)
        form_field["required"] = prop_name in required_names
        fields.append(form_field)
    return fields, names


def content_from_values(
    schema: Mapping[str, JsonValue], names: Mapping[str, str], values: Mapping[str, JsonValue]
) -> dict[str, JsonValue]:
    """Convert checked form values back to elicitation content keyed by the schema's property names.

    Raises:
        ValueError: A value does not fit its property (an integer with a fraction, a number out
            of range, a list item that is not allowed); the message names the field.
    """
    properties = schema.get("properties") or {}
    assert isinstance(properties, dict)
    content: dict[str, JsonValue] = {}
    for name, value in values.items():
        prop_name = names.get(name)
        if prop_name is None or value is None:
            continue
        prop = properties.get(prop_name)
        content[prop_name] = _convert(name, prop if isinstance(prop, dict) else {}, value)
    return content


def task_row(
    request: ElicitationRequest,
    *,
    task_id: str,
    workflow_id: str,
    step_key: str,
    step_id: str,
    created_at: float,
) -> dict[str, Any]:
    """Build the human task row that asks a person to answer `request`.

    Raises:
        ElicitationSchemaError: The requested schema cannot be shown as a form.
    """
    fields, names = fields_from_schema(request.requested_schema)
    return {
        "id": task_id,
        "workflow_id": workflow_id,
        "step_key": step_key,
        "step_id": step_id,
        "title": f"{request.server} asks for input",
        "instructions": request.message,
        "fields": fields,
        "context": {
            "kind": ELICITATION_KIND,
            "server": request.server,
            "tool": request.tool,
            "schema": request.requested_schema,
            "properties": dict(names),
        },
        "assignee_role": None,
        "status": "pending",
        "created_at": created_at,
        "due_at": None,
    }


def check_values(context: JsonValue, values: Mapping[str, JsonValue]) -> None:
    """Raise ValueError when accepted values do not fit the task's requested schema."""
    if not isinstance(context, dict):
        return
    schema = context.get("schema")
    names = context.get("properties")
    if isinstance(schema, dict) and isinstance(names, dict):
        content_from_values(schema, {str(k): str(v) for k, v in names.items()}, values)


def answer_from_decision(context: JsonValue, decision: str, values: Mapping[str, JsonValue]) -> ElicitationAnswer:
    """Build the answer for the server from a task's stored decision and values."""
    try:
        action = normalize_decision(decision)
    except ValueError:
        # A task ended by the system (a stopped run, a timeout) is a cancel.
        action = "cancel"
    if action != "accept":
        return ElicitationAnswer(action=action)
    content: dict[str, JsonValue] = {}
    if isinstance(context, dict):
        schema = context.get("schema")
        names = context.get("properties")
        if isinstance(schema, dict) and isinstance(names, dict):
            content = content_from_values(schema, {str(k): str(v) for k, v in names.items()}, values)
    return ElicitationAnswer(action="accept", content=content)


def _field_name(prop_name: str, taken: Mapping[str, str]) -> str:
    name = prop_name if _FIELD_NAME.match(prop_name) else re.sub(r"[^A-Za-z0-9_]", "_", prop_name)[:60]
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = f"f_{name}"[:60]
    base, number = name, 2
    while name in taken:
        name = f"{base}_{number}"
        number += 1
    return name


def _field(name: str, prop_name: str, prop: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    kind = prop.get("type")
    label = str(prop.get("title") or prop_name)
    notes = [str(prop["description"])] if prop.get("description") else []
    default = prop.get("default")
    field: dict[str, JsonValue] = {"name": name, "label": label, "type": "text", "default": None, "choices": []}
    if kind == "string":
        choices, titles = _string_choices(prop)
        if choices:
            field["type"] = "choice"
            field["choices"] = list(choices)
            if titles:
                notes.append("choices: " + ", ".join(f"{value} = {title}" for value, title in titles))
            field["default"] = default if default in choices else None
        else:
            if prop.get("format"):
                notes.append(f"format: {prop['format']}")
            field["default"] = default if isinstance(default, str) else None
    elif kind in ("number", "integer"):
        field["type"] = "number"
        notes.extend(_range_notes(prop, kind))
        if isinstance(default, int | float) and not isinstance(default, bool) and math.isfinite(default):
            field["default"] = default
    elif kind == "boolean":
        field["type"] = "boolean"
        field["default"] = default if isinstance(default, bool) else None
    elif kind == "array":
        field["type"] = "json"
        allowed, _ = _string_choices(prop.get("items") if isinstance(prop.get("items"), dict) else {})  # type: ignore[arg-type]
        notes.append("a JSON list" + (" of: " + ", ".join(allowed) if allowed else " of strings"))
        field["default"] = default if isinstance(default, list) else None
    else:
        raise ElicitationSchemaError(
            f"property '{prop_name}' has type {kind!r}; elicitation allows string, number, integer, boolean and array"
        )
    field["help"] = "; ".join(notes)
    return field


def _string_choices(prop: Mapping[str, JsonValue]) -> tuple[list[str], list[tuple[str, str]]]:
    """Return the allowed values of an enum property and, when it has them, their titles."""
    enum = prop.get("enum")
    if isinstance(enum, list):
        values = [str(value) for value in enum]
        names = prop.get("enumNames")
        if isinstance(names, list) and len(names) == len(values):
            return values, list(zip(values, [str(name) for name in names], strict=True))
        return values, []
    options = prop.get("oneOf") or prop.get("anyOf")
    if isinstance(options, list):
        pairs = [
            (str(option["const"]), str(option.get("title") or option["const"]))
            for option in options
            if isinstance(option, dict) and "const" in option
        ]
        return [value for value, _ in pairs], pairs
    return [], []


def _range_notes(prop: Mapping[str, JsonValue], kind: JsonValue) -> list[str]:
    notes = ["a whole number"] if kind == "integer" else []
    if prop.get("minimum") is not None:
        notes.append(f"at least {prop['minimum']}")
    if prop.get("maximum") is not None:
        notes.append(f"at most {prop['maximum']}")
    return notes


def _convert(name: str, prop: Mapping[str, JsonValue], value: JsonValue) -> JsonValue:
    kind = prop.get("type")
    if kind in ("number", "integer") and isinstance(value, int | float) and not isinstance(value, bool):
        if kind == "integer":
            if not float(value).is_integer():
                raise ValueError(f"field '{name}' needs a whole number, got {value!r}")
            value = int(value)
        minimum, maximum = prop.get("minimum"), prop.get("maximum")
        if isinstance(minimum, int | float) and value < minimum:
            raise ValueError(f"field '{name}' must be at least {minimum}, got {value!r}")
        if isinstance(maximum, int | float) and value > maximum:
            raise ValueError(f"field '{name}' must be at most {maximum}, got {value!r}")
        return value
    if kind == "array":
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"field '{name}' needs a JSON list of strings, got {value!r}")
        items = prop.get("items")
        allowed, _ = _string_choices(items if isinstance(items, dict) else {})
        wrong = [item for item in value if allowed and item not in allowed]
        if wrong:
            raise ValueError(f"field '{name}' allows {', '.join(allowed)}; remove {', '.join(map(str, wrong))}")
        return list(value)
    return value
