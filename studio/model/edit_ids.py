"""Step id helpers for edits: checking a new id, deriving one from a title, making one unique."""

from __future__ import annotations

import re
from collections.abc import Collection

from studio.model.edit_errors import EditError
from studio.model.workflow import STEP_ID_PATTERN

MAX_STEP_ID_LENGTH = 64
_STEP_ID = re.compile(STEP_ID_PATTERN)
_NOT_ALLOWED = re.compile(r"[^a-z0-9_-]+")
_NUMBER_SUFFIX = re.compile(r"-(\d+)$")


def check_new_step_id(step_id: str, taken: Collection[str]) -> None:
    """Raise :class:`EditError` unless ``step_id`` is a valid step id that no step in ``taken`` uses."""
    if not _STEP_ID.match(step_id):
        raise EditError(
            f"invalid step id {step_id!r}: use 1-64 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit (for example 'fetch-contacts')"
        )
    if step_id in taken:
        raise EditError(f"step id '{step_id}' is already taken by another step; choose a different id")


def slug_step_id(text: str) -> str:
    """Turn free text such as a title into a valid step id (``"Fetch Contacts!"`` becomes ``fetch-contacts``)."""
    slug = _NOT_ALLOWED.sub("-", text.strip().lower()).strip("-_")
    slug = slug[:MAX_STEP_ID_LENGTH].rstrip("-_")
    return slug or "step"


def unique_step_id(base: str, taken: Collection[str]) -> str:
    """Return ``base`` if unused, else ``base-2``, ``base-3``, … (an existing ``-N`` suffix is replaced).

    The result stays within the 64-character limit by shortening the base.
    """
    if base not in taken and _STEP_ID.match(base):
        return base
    stem = _NUMBER_SUFFIX.sub("", base) or "step"
    number = 2
    while True:
        suffix = f"-{number}"
        candidate = stem[: MAX_STEP_ID_LENGTH - len(suffix)].rstrip("-_") + suffix
        if candidate not in taken and _STEP_ID.match(candidate):
            return candidate
        number += 1
