"""Parsing and rendering of ``{{...}}`` templates in step configs.

A template is a reference to data, never code. The forms are:

- ``{{steps.<step-id>.result}}`` followed by an optional path such as ``.items[0].email``
- ``{{input.<name>}}`` with an optional path
- ``{{item}}`` and ``{{index}}`` inside a ``for_each`` body, ``{{item}}`` with an optional path
- ``{{run.id}}``

A string that is exactly one template renders to the referenced JSON value with its type kept
(a list stays a list). A template inside longer text renders as text, with objects and lists as
JSON. A path that does not resolve raises :class:`TemplateResolutionError`; it never turns into
``null`` or an empty string.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from studio.model.workflow import JsonValue

PathSegment = str | int
Root = Literal["steps", "input", "item", "index", "run"]

_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_IDENT = r"[A-Za-z0-9_][A-Za-z0-9_-]*"
_SEGMENT = re.compile(rf"\.({_IDENT})|\[(\d+)\]")


class TemplateError(ValueError):
    """Base of template errors; ``str()`` is a complete message for the user."""


class TemplateSyntaxError(TemplateError):
    """A ``{{...}}`` expression that is not one of the supported forms."""

    def __init__(self, message: str, expression: str) -> None:
        super().__init__(message)
        self.expression = expression


class TemplateResolutionError(TemplateError):
    """A reference whose target or path does not exist at render time."""

    def __init__(self, message: str, reference: Reference, missing_segment: str | None = None) -> None:
        super().__init__(message)
        self.reference = reference
        self.missing_segment = missing_segment


@dataclass(frozen=True)
class Reference:
    """One parsed ``{{...}}`` reference."""

    root: Root
    path: tuple[PathSegment, ...]
    """Segments after the root: after ``result`` for steps, after the name's root for the others."""
    step_id: str | None = None
    expression: str = ""

    def describe(self) -> str:
        return "{{" + self.expression + "}}"


@dataclass(frozen=True)
class Template:
    """A parsed string: literal text and references, in order."""

    parts: tuple[str | Reference, ...]

    @property
    def references(self) -> tuple[Reference, ...]:
        return tuple(part for part in self.parts if isinstance(part, Reference))

    @property
    def is_single_reference(self) -> bool:
        return len(self.parts) == 1 and isinstance(self.parts[0], Reference)


class TemplateScope(Protocol):
    """Data a template can read while a step is rendered."""

    def step_result(self, step_id: str) -> JsonValue:
        """Return the result of ``step_id``; raise KeyError if it has none (yet)."""
        ...

    @property
    def inputs(self) -> Mapping[str, JsonValue]: ...

    @property
    def run_id(self) -> str: ...

    @property
    def item(self) -> tuple[JsonValue, int] | None:
        """The current ``for_each`` item and its index, or None outside a body."""
        ...


def _parse_path(text: str, expression: str) -> tuple[PathSegment, ...]:
    segments: list[PathSegment] = []
    position = 0
    while position < len(text):
        match = _SEGMENT.match(text, position)
        if match is None:
            raise TemplateSyntaxError(
                f"invalid path '{text[position:]}' in template {{{{{expression}}}}}: use '.name' for "
                "object keys and '[0]' for list indexes",
                expression,
            )
        key, index = match.groups()
        segments.append(int(index) if index is not None else key)
        position = match.end()
    return tuple(segments)


def parse_reference(expression: str) -> Reference:
    """Parse the text between ``{{`` and ``}}``; raise TemplateSyntaxError with the fix if invalid."""
    text = expression.strip()
    if not text:
        raise TemplateSyntaxError("empty template '{{}}': write a reference such as {{input.topic}}", expression)
    if text.startswith("steps."):
        match = re.match(rf"steps\.({_IDENT})\.result", text)
        if match is None:
            raise TemplateSyntaxError(
                f"invalid step reference {{{{{text}}}}}: write {{{{steps.<step-id>.result}}}} "
                "followed by an optional path such as .items[0]",
                text,
            )
        return Reference("steps", _parse_path(text[match.end() :], text), match.group(1), text)
    if text.startswith("input.") or text == "input":
        path = _parse_path(text[len("input") :], text)
        if not path or not isinstance(path[0], str):
            raise TemplateSyntaxError(
                f"invalid input reference {{{{{text}}}}}: name the input, as in {{{{input.topic}}}}", text
            )
        return Reference("input", path, None, text)
    if text == "item" or text.startswith(("item.", "item[")):
        return Reference("item", _parse_path(text[len("item") :], text), None, text)
    if text == "index":
        return Reference("index", (), None, text)
    if text == "run.id":
        return Reference("run", ("id",), None, text)
    raise TemplateSyntaxError(
        f"unknown template {{{{{text}}}}}: a template starts with steps.<id>.result, input.<name>, "
        "item, index or run.id (templates hold references, not code)",
        text,
    )


@functools.lru_cache(maxsize=16_384)
def parse_template(text: str) -> Template:
    """Split ``text`` into literal parts and references; raise TemplateSyntaxError if one is invalid.

    Results are cached (a Template is immutable): validation, scheduling and every step attempt of a
    run parse the same strings, and a for_each renders its body's templates once per item.
    """
    parts: list[str | Reference] = []
    position = 0
    for match in _TEMPLATE.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        parts.append(parse_reference(match.group(1)))
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    # A lone '}}' stays text, so prompts can show nested JSON such as {"a": {"b": 1}}.
    literal_text = "".join(part for part in parts if isinstance(part, str))
    if "{{" in literal_text:
        raise TemplateSyntaxError(
            f"unbalanced braces in '{_shorten(text)}': every '{{{{' needs a matching '}}}}'", text
        )
    return Template(tuple(parts))


def iter_references(value: Any) -> Iterator[Reference]:
    """Yield every reference in a JSON value (strings inside lists and objects too)."""
    if isinstance(value, str):
        if "{{" in value or "}}" in value:
            yield from parse_template(value).references
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from iter_references(item)


def resolve_reference(reference: Reference, scope: TemplateScope) -> JsonValue:
    """Return the value ``reference`` points at; raise TemplateResolutionError naming what is missing."""
    base: JsonValue
    if reference.root == "steps":
        assert reference.step_id is not None
        try:
            base = scope.step_result(reference.step_id)
        except KeyError:
            raise TemplateResolutionError(
                f"{reference.describe()}: step '{reference.step_id}' has no result; it must run before "
                "this step (add an edge from it, or check the step id)",
                reference,
                reference.step_id,
            ) from None
        return _follow(base, reference.path, reference, "result")
    if reference.root == "input":
        name = reference.path[0]
        assert isinstance(name, str)
        if name not in scope.inputs:
            raise TemplateResolutionError(
                f"{reference.describe()}: the run input has no field '{name}'; pass it when starting the "
                "run or give it a default in the input schema",
                reference,
                name,
            )
        return _follow(scope.inputs[name], reference.path[1:], reference, f"input.{name}")
    if reference.root == "run":
        return scope.run_id
    current = scope.item
    if current is None:
        raise TemplateResolutionError(
            f"{reference.describe()} is only available inside a for_each body", reference, reference.root
        )
    if reference.root == "index":
        return current[1]
    return _follow(current[0], reference.path, reference, "item")


def _follow(value: JsonValue, path: tuple[PathSegment, ...], reference: Reference, walked: str) -> JsonValue:
    for segment in path:
        if isinstance(segment, int):
            if not isinstance(value, list):
                raise TemplateResolutionError(
                    f"{reference.describe()}: '{walked}' is {_kind(value)}, not a list, so [{segment}] does not apply",
                    reference,
                    f"[{segment}]",
                )
            if segment >= len(value):
                raise TemplateResolutionError(
                    f"{reference.describe()}: index [{segment}] is out of range; '{walked}' has {len(value)} item(s)",
                    reference,
                    f"[{segment}]",
                )
            value = value[segment]
            walked += f"[{segment}]"
        else:
            if not isinstance(value, dict):
                raise TemplateResolutionError(
                    f"{reference.describe()}: '{walked}' is {_kind(value)}, so it has no field '{segment}'",
                    reference,
                    segment,
                )
            if segment not in value:
                keys = ", ".join(sorted(value)[:10]) or "none"
                raise TemplateResolutionError(
                    f"{reference.describe()}: '{walked}' has no field '{segment}' (fields: {keys})",
                    reference,
                    segment,
                )
            value = value[segment]
            walked += f".{segment}"
    return value


def render_value(value: JsonValue, scope: TemplateScope) -> JsonValue:
    """Render every template in a JSON value and return the new value; the input is not changed."""
    if isinstance(value, str):
        return render_string(value, scope)
    if isinstance(value, dict):
        return {key: render_value(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, scope) for item in value]
    return value


def render_string(text: str, scope: TemplateScope) -> JsonValue:
    """Render one string: a lone reference keeps its JSON type, mixed text becomes text."""
    if "{{" not in text and "}}" not in text:
        return text
    template = parse_template(text)
    if template.is_single_reference:
        reference = template.parts[0]
        assert isinstance(reference, Reference)
        return resolve_reference(reference, scope)
    pieces: list[str] = []
    for part in template.parts:
        if isinstance(part, str):
            pieces.append(part)
        else:
            pieces.append(to_text(resolve_reference(part, scope)))
    return "".join(pieces)


def to_text(value: JsonValue) -> str:
    """Return how a value appears inside text: strings as they are, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _kind(value: JsonValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
