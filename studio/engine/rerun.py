"""Steps a new run takes from a record instead of executing: re-runs from a step and pinned test outputs.

Both kinds become *seeded* step rows, written with the new run before it starts. The runner
treats them like the completed steps of a resumed run, so they never execute again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from studio.engine.runner import ScopeGraph
from studio.model.workflow import AnyStep, ForEachStep, Workflow
from studio.store import StepRunRecord

logger = logging.getLogger(__name__)


class RerunError(Exception):
    """A re-run or pin request that cannot be carried out; the message names the step and the fix."""


@dataclass(frozen=True)
class SeededStep:
    """A step row that exists before the run starts, and the data of its journaled event."""

    row: dict[str, Any]
    event_type: str
    event_data: dict[str, JsonValue]

    @property
    def step_key(self) -> str:
        return str(self.row["step_key"])

    @property
    def step_id(self) -> str:
        return str(self.row["step_id"])


@dataclass(frozen=True)
class RerunPlan:
    """The top-level steps a re-run executes again and the recorded step rows it reuses."""

    start_step_id: str
    """The top-level step the re-run starts from (a for_each when a body step was chosen)."""
    rerun_step_ids: frozenset[str]
    reused: dict[str, StepRunRecord]


def top_level_id(step_key: str) -> str:
    """Return the top-level step id of a step key (``fan[2].body`` belongs to ``fan``)."""
    return step_key.partition("[")[0]


def plan_rerun(workflow: Workflow, run_id: str, records: Mapping[str, StepRunRecord], step_id: str) -> RerunPlan:
    """Plan a re-run of ``run_id`` from ``step_id``; raise RerunError for an unknown step or missing upstream.

    The chosen step and every step downstream of it (edges and template references, with a
    for_each's body counting as the for_each) run again. Every other step that completed, or
    failed with continue_on_error, is reused with its recorded result; other steps run again.
    """
    start = _top_level_step(workflow, step_id)
    graph = ScopeGraph.build(workflow.steps, workflow.edges)
    rerun = _closure(start, graph.dependents)
    upstream = _closure(start, graph.dependencies) - {start}
    missing = [dependency for dependency in sorted(upstream) if not _reusable(records.get(dependency))]
    if missing:
        states = ", ".join(f"'{key}' ({_state(records.get(key))})" for key in missing)
        raise RerunError(
            f"cannot re-run run {run_id} from step '{step_id}': its upstream step(s) {states} did not complete "
            "in that run; re-run from the earliest of them instead"
        )
    reused: dict[str, StepRunRecord] = {}
    for key, record in records.items():
        owner = top_level_id(key)
        if owner in rerun or not _reusable(records.get(owner)):
            continue
        if _reusable(record):
            reused[key] = record
    return RerunPlan(start, frozenset(rerun), reused)


def reused_seeds(plan: RerunPlan, source_run_id: str) -> list[SeededStep]:
    """Return the seeded rows of a re-run: each reused record, marked with the run it came from."""
    seeds: list[SeededStep] = []
    for key in sorted(plan.reused):
        record = plan.reused[key]
        row = {name: getattr(record, name) for name in _COPIED_COLUMNS}
        row["reused_from"] = source_run_id
        row["pinned"] = False
        duration = _duration(record)
        if record.status == "completed":
            data: dict[str, JsonValue] = {
                "result": record.result,
                "duration_s": duration,
                "attempt": record.attempt,
                "reused_from": source_run_id,
            }
            seeds.append(SeededStep(row, "step_completed", data))
        else:
            data = {
                "error": record.error,
                "attempt": record.attempt,
                "final": True,
                "continue_on_error": True,
                "reused_from": source_run_id,
            }
            seeds.append(SeededStep(row, "step_failed", data))
    return seeds


def pinned_seeds(workflow: Workflow, pins: Mapping[str, JsonValue]) -> list[SeededStep]:
    """Return seeded rows that complete each pinned top-level step with its pinned value.

    Raises RerunError when a pin names a step that is not a top-level step of ``workflow``
    (steps inside a for_each body run once per item and cannot be pinned one by one).
    """
    steps = {step.id: step for step in workflow.steps}
    seeds: list[SeededStep] = []
    now = time.time()
    for step_id in sorted(pins):
        step = steps.get(step_id)
        if step is None:
            raise RerunError(_unknown_pin_message(workflow, step_id))
        row = {
            "step_key": step_id,
            "step_id": step_id,
            "step_type": step.type,
            "status": "completed",
            "attempt": 0,
            "inputs": None,
            "result": pins[step_id],
            "error": None,
            "started_at": now,
            "finished_at": now,
            "reused_from": None,
            "pinned": True,
        }
        data: dict[str, JsonValue] = {"result": pins[step_id], "duration_s": 0.0, "attempt": 0, "pinned": True}
        seeds.append(SeededStep(row, "step_completed", data))
    return seeds


_COPIED_COLUMNS = (
    "step_key", "step_id", "step_type", "status", "attempt", "inputs", "result", "error", "started_at", "finished_at",
)  # fmt: skip


def _top_level_step(workflow: Workflow, step_id: str) -> str:
    """Return ``step_id`` if it is a top-level step, or the for_each whose body contains it."""
    for step in workflow.steps:
        if step.id == step_id or (isinstance(step, ForEachStep) and _contains(step, step_id)):
            if step.id != step_id:
                logger.info("Re-running from step %s re-runs its whole for_each %s", step_id, step.id)
            return step.id
    known = ", ".join(step.id for step in workflow.steps)
    raise RerunError(f"step '{step_id}' does not exist in workflow '{workflow.name}'; choose one of: {known}")


def _contains(step: ForEachStep, step_id: str) -> bool:
    body: list[AnyStep] = step.config.steps
    return any(inner.id == step_id or (isinstance(inner, ForEachStep) and _contains(inner, step_id)) for inner in body)


def _closure(start: str, neighbours: Mapping[str, Any]) -> set[str]:
    """Return ``start`` and every step reachable from it through ``neighbours``."""
    seen = {start}
    pending = [start]
    while pending:
        for neighbour in neighbours.get(pending.pop(), ()):
            if neighbour not in seen:
                seen.add(neighbour)
                pending.append(neighbour)
    return seen


def _reusable(record: StepRunRecord | None) -> bool:
    if record is None:
        return False
    if record.status == "completed":
        return True
    return record.status == "failed" and isinstance(record.error, dict) and record.error.get("tolerated") is True


def _state(record: StepRunRecord | None) -> str:
    return "never ran" if record is None else record.status


def _duration(record: StepRunRecord) -> float | None:
    if record.started_at is None or record.finished_at is None:
        return None
    return round(record.finished_at - record.started_at, 6)


def _unknown_pin_message(workflow: Workflow, step_id: str) -> str:
    for step in workflow.steps:
        if isinstance(step, ForEachStep) and _contains(step, step_id):
            return (
                f"step '{step_id}' is inside for_each '{step.id}' and cannot be pinned on its own; "
                f"pin '{step.id}' instead"
            )
    known = ", ".join(step.id for step in workflow.steps)
    return f"cannot pin step '{step_id}': workflow '{workflow.name}' has no such top-level step; steps: {known}"
