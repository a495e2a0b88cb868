"""Findings reported by workflow validation, and small helpers shared by the validation modules."""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]
"""``error`` blocks a run; ``warning`` points at something that probably is a mistake but can run."""


@dataclass(frozen=True)
class Finding:
    """One problem found in a workflow.

    ``field_path`` is relative to the step (``config.arguments.query``) when ``step_id`` is set, and
    a document path (``edges[3]``, ``input_schema``) for workflow-level findings.
    """

    code: str
    """Stable machine-readable kind, such as ``cycle`` or ``unknown-step-ref``."""
    severity: Severity
    message: str
    """Explanation of the problem and its fix, naming the values involved."""
    step_id: str | None = None
    field_path: str | None = None


def has_errors(findings: Iterable[Finding]) -> bool:
    """Return whether any finding is an error (warnings alone do not block a run)."""
    return any(finding.severity == "error" for finding in findings)


def error(code: str, message: str, step_id: str | None = None, field_path: str | None = None) -> Finding:
    return Finding(code, "error", message, step_id, field_path)


def warning(code: str, message: str, step_id: str | None = None, field_path: str | None = None) -> Finding:
    return Finding(code, "warning", message, step_id, field_path)


def suggestion(name: str, candidates: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for close matches of ``name``, or an empty string."""
    return _suggestion(name, tuple(candidates))


@functools.lru_cache(maxsize=1024)
def _suggestion(name: str, candidates: tuple[str, ...]) -> str:
    # Cached because difflib compares the name with every candidate, and re-validation after each
    # edit would otherwise repeat that for every finding that names an unknown id.
    matches = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(f"'{match}'" for match in matches) + "?"


def quote_list(names: Iterable[str], limit: int = 8) -> str:
    """Return ``'a', 'b', 'c'`` with at most ``limit`` names and a count of the rest."""
    items = list(names)
    text = ", ".join(f"'{name}'" for name in items[:limit])
    if len(items) > limit:
        text += f" and {len(items) - limit} more"
    return text


def shorten(value: Any, limit: int = 60) -> str:
    """Return ``value`` as compact JSON, cut to ``limit`` characters for use in a message."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def canonical(value: Any) -> str:
    """Return a deterministic JSON text of ``value``, used as a cache key."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
