"""Setting one field of a step by dotted path, validated by the step model (the inspector's edits)."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from studio.model.edit_errors import EditError
from studio.model.workflow import AnyStep, Step

_STEP_ADAPTER: TypeAdapter[AnyStep] = TypeAdapter(Step)


def with_field(step: AnyStep, field_path: str, value: Any) -> AnyStep:
    """Return a copy of ``step`` with the field at dotted ``field_path`` set to ``value``, validated.

    Dict-valued fields such as ``config.arguments`` accept new keys. Raise :class:`EditError` naming
    the path for ``id`` and ``type`` (use rename or set_step), for paths that do not exist and for
    values the step model rejects.
    """
    segments = _parse_field_path(field_path)
    if segments[0] in ("id", "type"):
        raise EditError(f"cannot set '{field_path}' as a field; use rename_step for the id and set_step for the type")
    if segments == ["title"]:
        segments = ["name"]
    data = step.model_dump()
    container: Any = data
    for depth, segment in enumerate(segments[:-1]):
        try:
            container = container[segment]
        except (KeyError, IndexError, TypeError):
            walked = ".".join(str(part) for part in segments[: depth + 1])
            raise EditError(f"invalid field path '{field_path}': '{walked}' does not exist in step '{step.id}'") from None
    last = segments[-1]
    if isinstance(container, list):
        if not isinstance(last, int) or not 0 <= last < len(container):
            raise EditError(f"invalid field path '{field_path}': index {last!r} is out of range in step '{step.id}'")
        container[last] = value
    elif isinstance(container, dict):
        container[last] = value
    else:
        raise EditError(f"invalid field path '{field_path}': its parent is not an object or list in step '{step.id}'")
    try:
        return _STEP_ADAPTER.validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise EditError(f"invalid value {value!r} for '{field_path}' of step '{step.id}': {first['msg']}") from None


def _parse_field_path(field_path: str) -> list[str | int]:
    segments: list[str | int] = []
    for part in field_path.split("."):
        name, _bracket, rest = part.partition("[")
        if not name and not segments:
            raise EditError(f"invalid field path '{field_path}': it must start with a field name such as 'config'")
        if name:
            segments.append(name)
        while rest:
            index_text, _close, rest = rest.partition("]")
            if not index_text.isdigit():
                raise EditError(f"invalid field path '{field_path}': '[{index_text}]' is not a list index")
            segments.append(int(index_text))
            rest = rest.removeprefix("[")
    return segments
