"""Rewriting of ``{{steps.<id>.result}}`` references when step ids change (rename, paste)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from studio.model.templates import TemplateError, parse_reference
from studio.model.workflow import (
    AnyStep,
    ForEachStep,
    FormField,
    HumanTaskStep,
    JsonValue,
    LlmCallStep,
    LuaScriptStep,
    McpCallStep,
)

logger = logging.getLogger(__name__)

_OPEN = "{{"
_CLOSE = "}}"


def _template_spans(text: str) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` of each ``{{...}}`` in ``text``, ``end`` past the closing braces.

    The spans are the ones :func:`studio.model.templates.parse_template` splits on: each ``{{`` ends
    at the first ``}}`` after it.
    """
    position = 0
    while True:
        start = text.find(_OPEN, position)
        if start < 0:
            return
        close = text.find(_CLOSE, start + len(_OPEN))
        if close < 0:
            return
        end = close + len(_CLOSE)
        yield start, end
        position = end


def rewrite_text(text: str, id_map: Mapping[str, str]) -> str:
    """Return ``text`` with every step reference whose id is a key of ``id_map`` pointing at the mapped id.

    Each ``{{...}}`` is parsed with the template parser. Literal text, whitespace inside the braces,
    the result path and references to other steps stay exactly as they were. An expression that
    does not parse is left unchanged, because validation reports it.
    """
    if _OPEN not in text:
        return text
    pieces: list[str] = []
    position = 0
    for start, end in _template_spans(text):
        inner = text[start + len(_OPEN) : end - len(_CLOSE)]
        pieces.append(text[position:start])
        pieces.append(_OPEN + _rewrite_expression(inner, id_map) + _CLOSE)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def _rewrite_expression(inner: str, id_map: Mapping[str, str]) -> str:
    try:
        reference = parse_reference(inner)
    except TemplateError:
        return inner
    if reference.step_id is None or reference.step_id not in id_map:
        return inner
    stripped = inner.strip()
    leading = inner[: len(inner) - len(inner.lstrip())]
    trailing = inner[len(inner.rstrip()) :]
    old_prefix = f"steps.{reference.step_id}"
    new_prefix = f"steps.{id_map[reference.step_id]}"
    return leading + new_prefix + stripped[len(old_prefix) :] + trailing


def rewrite_value(value: JsonValue, id_map: Mapping[str, str]) -> JsonValue:
    """Return a copy of a JSON value with :func:`rewrite_text` applied to every string in it."""
    if isinstance(value, str):
        return rewrite_text(value, id_map)
    if isinstance(value, dict):
        return {key: rewrite_value(item, id_map) for key, item in value.items()}
    if isinstance(value, list):
        return [rewrite_value(item, id_map) for item in value]
    return value


def rewrite_step(step: AnyStep, id_map: Mapping[str, str], *, include_body: bool = True) -> AnyStep:
    """Return ``step`` with ids in ``id_map`` rewritten in its id, templated fields and ``for_each`` body.

    The fields rewritten are those :func:`studio.model.workflow.template_fields` lists, plus, for a
    ``for_each``, its ``output`` and, when ``include_body`` is true, its body steps and body edges.
    With ``include_body`` false the new step shares the body lists with ``step``, which suits an
    editor that rewrites body steps one by one. The input is not changed.
    """
    update: dict[str, Any] = {
        "id": id_map.get(step.id, step.id),
        "config": _rewrite_config(step, id_map, include_body),
    }
    return step.model_copy(update=update)


def _rewrite_config(step: AnyStep, id_map: Mapping[str, str], include_body: bool) -> Any:
    config = step.config
    if isinstance(step, McpCallStep):
        return step.config.model_copy(update={"arguments": rewrite_value(step.config.arguments, id_map)})
    if isinstance(step, LlmCallStep):
        llm = step.config
        fields = {"model": llm.model, "system_prompt": llm.system_prompt, "prompt": llm.prompt}
        return llm.model_copy(update={name: rewrite_text(text, id_map) for name, text in fields.items()})
    if isinstance(step, HumanTaskStep):
        task = step.config
        form_fields = [_rewrite_form_field(form_field, id_map) for form_field in task.fields]
        return task.model_copy(
            update={
                "title": rewrite_text(task.title, id_map),
                "instructions": rewrite_text(task.instructions, id_map),
                "fields": form_fields,
            }
        )
    if isinstance(step, LuaScriptStep):
        return step.config.model_copy(update={"inputs": rewrite_value(step.config.inputs, id_map)})
    if isinstance(step, ForEachStep):
        body = step.config
        output = id_map.get(body.output, body.output) if body.output is not None else None
        edges = [
            edge.model_copy(update={"source": id_map.get(edge.source, edge.source),
                                    "target": id_map.get(edge.target, edge.target)})
            for edge in body.edges
        ]
        update: dict[str, Any] = {"items": rewrite_value(body.items, id_map), "output": output}
        if include_body:
            update["steps"] = [rewrite_step(child, id_map) for child in body.steps]
            update["edges"] = edges
        return body.model_copy(update=update)
    return config


def _rewrite_form_field(form_field: FormField, id_map: Mapping[str, str]) -> FormField:
    return form_field.model_copy(update={"default": rewrite_value(form_field.default, id_map)})
