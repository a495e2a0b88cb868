"""Conversion and checking of inspector input before it becomes an edit; imports no Qt."""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema
from pydantic import TypeAdapter, ValidationError

from studio.model.edits import Usage, find_usages
from studio.model.validation_findings import canonical
from studio.model.validation_steps import schema_problem, validator_class_for
from studio.model.workflow import AnyStep, ForEachStep, JsonValue, Step, Workflow, iter_steps

logger = logging.getLogger(__name__)

_STEP_ADAPTER: TypeAdapter[AnyStep] = TypeAdapter(Step)
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")

Converter = Callable[[Any], Any]
"""Turns an editor's raw value into the value to store; raises :class:`InputError` when it is bad."""


class InputError(ValueError):
    """Input that cannot be stored. ``str()`` names the value and how to fix it."""


def split_path(field_path: str) -> list[str | int]:
    """Split ``config.fields[2].name`` into ``['config', 'fields', 2, 'name']``."""
    parts: list[str | int] = []
    for match in _PATH_PART.finditer(field_path):
        key, index = match.groups()
        parts.append(int(index) if index is not None else key)
    return parts


def get_path(data: Any, field_path: str) -> Any:
    """Return the value at ``field_path`` in nested dicts and lists, or None when a part is missing."""
    node = data
    for part in split_path(field_path):
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return None
        elif not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def set_path(data: dict[str, Any], field_path: str, value: Any) -> None:
    """Set ``value`` at ``field_path`` inside ``data``, creating missing objects on the way."""
    parts = split_path(field_path)
    node: Any = data
    for part, following in itertools.pairwise(parts):
        if isinstance(part, int):
            node = node[part]
            continue
        if node.get(part) is None:
            node[part] = [] if isinstance(following, int) else {}
        node = node[part]
    last = parts[-1]
    node[last] = value


def checked_step(step: AnyStep, field_path: str, value: Any, label: str) -> AnyStep:
    """Return ``step`` with ``value`` at ``field_path``, or raise InputError naming ``label`` and the fix.

    The whole step is validated again, so every constraint of the document model applies.
    """
    data = step.model_dump(mode="json")
    set_path(data, field_path, value)
    try:
        return _STEP_ADAPTER.validate_python(data)
    except ValidationError as problem:
        first = problem.errors()[0]
        reason = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        raise InputError(f"{label} {_show(value)} is invalid: {reason}. Enter a value that fits and press Enter") from None


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 60 else text[:59] + "…"


# -- converters -----------------------------------------------------------------------------------


def text_value(raw: Any) -> str:
    return str(raw)


def optional_text(raw: Any) -> str | None:
    """Return the stripped text, or None when it is empty (the field is then unset)."""
    text = str(raw).strip()
    return text or None


def number_converter(
    label: str,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    optional: bool = False,
    allow_template: bool = False,
) -> Converter:
    """Return a converter of text to a number in ``[minimum, maximum]``; empty text is None when ``optional``."""

    def convert(raw: Any) -> int | float | str | None:
        text = str(raw).strip()
        if not text:
            if optional:
                return None
            raise InputError(f"{label} is empty; enter a number")
        if allow_template and text.startswith("{{"):
            return text
        kind = "a whole number" if integer else "a number"
        try:
            number: int | float = int(text) if integer else float(text)
        except ValueError:
            raise InputError(f"{label} '{text}' is not {kind}; enter {kind} such as {'3' if integer else '2.5'}") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise InputError(f"{label} '{text}' is not a finite number; enter {kind}")
        if minimum is not None and number < minimum:
            raise InputError(f"{label} {text} is below the minimum {minimum:g}; enter at least {minimum:g}")
        if maximum is not None and number > maximum:
            raise InputError(f"{label} {text} is above the maximum {maximum:g}; enter at most {maximum:g}")
        return number

    return convert


def json_converter(label: str, *, optional: bool = False, expect: type | None = None) -> Converter:
    """Return a converter of JSON text; empty text is None when ``optional``; ``expect`` checks dict or list."""

    def convert(raw: Any) -> Any:
        text = str(raw).strip()
        if not text:
            if optional:
                return None
            raise InputError(f"{label} is empty; enter JSON such as {'{}' if expect is dict else '[]'}")
        try:
            value: JsonValue = json.loads(text)
        except json.JSONDecodeError as problem:
            raise InputError(
                f"{label} is not valid JSON: {problem.msg} at line {problem.lineno} column {problem.colno}; "
                "fix the JSON text"
            ) from None
        if expect is dict and not isinstance(value, dict):
            raise InputError(f"{label} must be a JSON object such as {{\"key\": \"value\"}}, not {_show(value)}")
        if expect is list and not isinstance(value, list):
            raise InputError(f"{label} must be a JSON list such as [1, 2], not {_show(value)}")
        return value

    return convert


def json_schema_converter(label: str) -> Converter:
    """Return a converter of JSON text to a valid, self-contained JSON Schema object (empty text is None)."""
    parse = json_converter(label, optional=True, expect=dict)

    def convert(raw: Any) -> Any:
        value = parse(raw)
        if value is None:
            return None
        problem = schema_problem(canonical(value))
        if problem is not None:
            message, location = problem
            where = f" at {location.lstrip('.')}" if location else ""
            raise InputError(f"{label} is not a valid JSON Schema{where}: {message}; fix the schema")
        return value

    return convert


def items_converter(raw: Any) -> Any:
    """Convert the for_each items text: a JSON list when it starts with '[', otherwise one template."""
    text = str(raw).strip()
    if text.startswith("["):
        return json_converter("items", expect=list)(text)
    if not text:
        raise InputError("items is empty; enter a template such as {{steps.fetch.result.rows}} or a JSON list")
    return text


def choice_list_converter(label: str, allowed: tuple[str, ...]) -> Converter:
    """Return a converter of comma-separated names, each one of ``allowed``."""

    def convert(raw: Any) -> list[str]:
        names = [name.strip() for name in str(raw).split(",") if name.strip()]
        for name in names:
            if name not in allowed:
                raise InputError(f"{label} '{name}' is not known; use a comma-separated list of: {', '.join(allowed)}")
        return names

    return convert


def schema_value_converter(label: str, schema: Mapping[str, Any], kind: str) -> Converter:
    """Return a converter for one tool argument of JSON Schema ``schema``; templates pass unchecked.

    ``kind`` is how the editor shows the value: ``text`` (a string), ``number``, ``json`` or ``value``
    (already converted, from a choice). Empty input means the argument is left out (None).
    """

    def convert(raw: Any) -> JsonValue:
        if kind == "value":
            value: JsonValue = raw
        else:
            text = str(raw)
            if not text.strip():
                return None
            if "{{" in text and kind != "json":
                return text
            if kind == "number":
                value = number_converter(label, integer=_declared_type(schema) == "integer")(text)
            elif kind == "json":
                value = json_converter(label)(text)
            else:
                value = text
        if value is None:
            return None
        _check_against(label, schema, value)
        return value

    return convert


def _declared_type(schema: Mapping[str, Any]) -> str | None:
    declared = schema.get("type")
    return declared if isinstance(declared, str) else None


def _check_against(label: str, schema: Mapping[str, Any], value: JsonValue) -> None:
    if isinstance(value, str) and "{{" in value:
        return
    validator_class = validator_class_for(schema)
    if validator_class is None:
        return
    try:
        problem = jsonschema.exceptions.best_match(validator_class(schema).iter_errors(value))
    except jsonschema.exceptions.SchemaError:
        logger.debug("argument schema of %s is invalid, so its value is not checked", label)
        return
    if problem is not None:
        raise InputError(f"{label} {_show(value)} does not fit the tool's input schema: {problem.message}; change the value")


# -- usages ---------------------------------------------------------------------------------------


def usages_of(workflow: Workflow, step_ids: list[str]) -> list[Usage]:
    """Return the usages of ``step_ids`` and of their ``for_each`` bodies by steps outside them, in document order.

    Removing a ``for_each`` removes its body too, so a step outside the loop that reads a body
    step loses its source as well.
    """
    removed = _with_bodies(workflow, step_ids)
    found: list[Usage] = []
    for step_id in removed:
        found.extend(usage for usage in find_usages(workflow, step_id) if usage.step_id not in removed)
    return found


def _with_bodies(workflow: Workflow, step_ids: list[str]) -> list[str]:
    wanted = set(step_ids)
    found = list(step_ids)
    for step in workflow.iter_steps():
        if step.id in wanted and isinstance(step, ForEachStep):
            body_ids = [body.id for body in iter_steps(step.config.steps)]
            found.extend(body_ids)
            wanted.update(body_ids)
    return list(dict.fromkeys(found))


def removal_warning(workflow: Workflow, step_ids: list[str]) -> str:
    """Return the text that lists which steps and fields read ``step_ids``, or '' when none does."""
    usages = usages_of(workflow, step_ids)
    if not usages:
        return ""
    names = ", ".join(f"'{step_id}'" for step_id in step_ids)
    lines = [f"{len(usages)} field(s) read {names}. After the removal they refer to a missing step:", ""]
    lines.extend(f"• step '{usage.step_id}', field {usage.field_path}" for usage in usages[:20])
    if len(usages) > 20:
        lines.append(f"… and {len(usages) - 20} more")
    lines.extend(["", "Remove anyway? Undo restores the steps."])
    return "\n".join(lines)


def last_run_results(store: Any, workflow_id: str) -> dict[str, JsonValue]:
    """Return the step results of the newest run of ``workflow_id`` in ``store``, keyed by step id.

    For a step inside a for_each body the first recorded item's result is kept.
    """
    runs = [run for run in store.list_runs(limit=200) if run.workflow_id == workflow_id]
    if not runs:
        return {}
    results: dict[str, JsonValue] = {}
    for record in sorted(store.step_runs(runs[0].id).values(), key=lambda item: item.step_key):
        if record.result is not None and record.step_id not in results:
            results[record.step_id] = record.result
    return results
