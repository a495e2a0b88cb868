"""Compare two runs of one workflow step by step: status, duration and a structured diff of outputs."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import JsonValue

from studio.engine.rerun import top_level_id
from studio.store import StepRunRecord, Store

logger = logging.getLogger(__name__)


class CompareError(Exception):
    """Two runs that cannot be compared; the message names them and what to compare instead."""


@dataclass(frozen=True)
class JsonChange:
    """One difference between two JSON values at ``path`` (``$`` is the root, ``$.items[0].email`` a leaf)."""

    path: str
    change: str
    """'added' (only in run B), 'removed' (only in run A) or 'changed'."""
    a: JsonValue
    b: JsonValue


@dataclass(frozen=True)
class StepComparison:
    """One step key in both runs; a side is None where the step did not run in that run."""

    step_key: str
    status_a: str | None
    status_b: str | None
    duration_a: float | None
    duration_b: float | None
    output_equal: bool
    changes: list[JsonChange]


@dataclass(frozen=True)
class RunComparison:
    """Two runs of one workflow, compared per step key in the workflow's step order."""

    run_a: str
    run_b: str
    workflow_id: str
    status_a: str
    status_b: str
    steps: list[StepComparison]

    @property
    def differing(self) -> list[StepComparison]:
        """Steps whose status or output differ between the runs."""
        return [step for step in self.steps if step.status_a != step.status_b or not step.output_equal]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare_runs(store: Store, run_a: str, run_b: str) -> RunComparison:
    """Compare two runs of the same workflow; raise CompareError for runs of different workflows."""
    first = store.get_run(run_a)
    second = store.get_run(run_b)
    if first.workflow_id != second.workflow_id:
        names = store.workflow_names([first.workflow_id, second.workflow_id])
        raise CompareError(
            f"runs {first.id} ('{names.get(first.workflow_id, first.workflow_id)}') and {second.id} "
            f"('{names.get(second.workflow_id, second.workflow_id)}') belong to different workflows; "
            "compare two runs of the same workflow"
        )
    rows_a = store.step_runs(first.id)
    rows_b = store.step_runs(second.id)
    order = [step.id for step in store.get_version(first.version_id).workflow.steps]
    steps = [_compare_step(key, rows_a.get(key), rows_b.get(key)) for key in _ordered_keys(order, rows_a, rows_b)]
    return RunComparison(first.id, second.id, first.workflow_id, first.status, second.status, steps)


def diff_json(a: JsonValue, b: JsonValue, path: str = "$") -> list[JsonChange]:
    """Return the differences between two JSON values, objects by key and lists by index."""
    if isinstance(a, dict) and isinstance(b, dict):
        changes: list[JsonChange] = []
        for key in [*a, *(key for key in b if key not in a)]:
            child = f"{path}.{key}"
            if key not in b:
                changes.append(JsonChange(child, "removed", a[key], None))
            elif key not in a:
                changes.append(JsonChange(child, "added", None, b[key]))
            else:
                changes.extend(diff_json(a[key], b[key], child))
        return changes
    if isinstance(a, list) and isinstance(b, list):
        changes = []
        for index in range(max(len(a), len(b))):
            child = f"{path}[{index}]"
            if index >= len(b):
                changes.append(JsonChange(child, "removed", a[index], None))
            elif index >= len(a):
                changes.append(JsonChange(child, "added", None, b[index]))
            else:
                changes.extend(diff_json(a[index], b[index], child))
        return changes
    return [] if _same_scalar(a, b) else [JsonChange(path, "changed", a, b)]


def _same_scalar(a: JsonValue, b: JsonValue) -> bool:
    # True == 1 in Python, but JSON keeps booleans and numbers apart.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def _is_number(value: JsonValue) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare_step(key: str, a: StepRunRecord | None, b: StepRunRecord | None) -> StepComparison:
    output_a = None if a is None else a.result
    output_b = None if b is None else b.result
    changes = diff_json(output_a, output_b)
    return StepComparison(
        step_key=key,
        status_a=None if a is None else a.status,
        status_b=None if b is None else b.status,
        duration_a=_duration(a),
        duration_b=_duration(b),
        output_equal=not changes,
        changes=changes,
    )


def _duration(record: StepRunRecord | None) -> float | None:
    if record is None or record.started_at is None or record.finished_at is None:
        return None
    return round(record.finished_at - record.started_at, 6)


def _ordered_keys(order: list[str], *row_sets: dict[str, StepRunRecord]) -> list[str]:
    """Return every step key of the runs, top-level steps in workflow order, each followed by its fan-out keys."""
    position = {step_id: index for index, step_id in enumerate(order)}
    keys = {key for rows in row_sets for key in rows}

    def sort_key(key: str) -> tuple[int, str, int, str]:
        owner = top_level_id(key)
        index_text = key[len(owner) + 1 :].partition("]")[0]
        item = int(index_text) if index_text.isdigit() else -1
        return (position.get(owner, len(order)), owner, item, key)

    return sorted(keys, key=sort_key)
