"""Qt-free rows of the run comparison view, formatted from a :class:`RunComparison`."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from pydantic import JsonValue

from studio.engine.compare import RunComparison, StepComparison
from studio.panels.timeline.model import format_duration

logger = logging.getLogger(__name__)

STEP_COLUMNS = ("Step", "Status A", "Status B", "Duration A", "Duration B", "Output")
DIFF_COLUMNS = ("Path", "Change", "Value A", "Value B")
MAX_VALUE_CHARS = 300
"""Maximum characters of a JSON value in a diff cell. Longer values are cut and end with an ellipsis."""


@dataclass(frozen=True)
class StepRow:
    """The text cells of one step key in the comparison table, and whether its status or output differs."""

    cells: tuple[str, str, str, str, str, str]
    differs: bool


def step_rows(comparison: RunComparison) -> list[StepRow]:
    """Return one row per step key, in the comparison's order."""
    return [_step_row(step) for step in comparison.steps]


def _step_row(step: StepComparison) -> StepRow:
    cells = (
        step.step_key,
        step.status_a or "did not run",
        step.status_b or "did not run",
        _duration(step.duration_a),
        _duration(step.duration_b),
        "same" if step.output_equal else "differs",
    )
    return StepRow(cells, step.status_a != step.status_b or not step.output_equal)


def diff_rows(step: StepComparison) -> list[tuple[str, str, str, str]]:
    """Return the output differences of ``step`` as (path, change, value A, value B) text rows."""
    rows = []
    for change in step.changes:
        value_a = "" if change.change == "added" else value_text(change.a)
        value_b = "" if change.change == "removed" else value_text(change.b)
        rows.append((change.path, change.change, value_a, value_b))
    return rows


def value_text(value: JsonValue) -> str:
    """Return ``value`` as compact JSON, shortened to :data:`MAX_VALUE_CHARS` characters."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _duration(seconds: float | None) -> str:
    return "" if seconds is None else format_duration(seconds)


def summary_text(comparison: RunComparison) -> str:
    """Return the header line: both run ids with their statuses and the count of differing steps."""
    differing = len(comparison.differing)
    return (
        f"A: run {comparison.run_a[:8]} ({comparison.status_a})  ·  B: run {comparison.run_b[:8]} "
        f"({comparison.status_b})  ·  {differing} of {len(comparison.steps)} steps differ"
    )
