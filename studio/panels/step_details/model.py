"""Qt-free step details: one step execution's record, attempts, log lines and token usage from the store."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from studio.panels.timeline.model import event_fields, step_id_of
from studio.store import StepRunRecord

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
MAX_LOG_LINES = 5000
"""Log and progress lines kept per step; older lines are dropped first."""


@dataclass
class Attempt:
    """One try of a step. ``status`` is ``running``, ``completed``, ``failed`` or ``cancelled``."""

    number: int
    started_at: float | None = None
    finished_at: float | None = None
    status: str = "running"
    error: str = ""
    retry_delay_s: float | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(self.finished_at - self.started_at, 0.0)


@dataclass(frozen=True)
class LogLine:
    """A ``step_log`` line (``kind`` ``log``) or a live ``step_progress`` message (``kind`` ``progress``)."""

    at: float
    level: str
    message: str
    kind: str = "log"


@dataclass
class StepDetails:
    """Everything the details panel shows about one step execution (a step key of one run)."""

    run_id: str
    step_key: str
    step_id: str
    step_type: str = ""
    status: str = "pending"
    inputs: Any = None
    result: Any = None
    error: Any = None
    started_at: float | None = None
    finished_at: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    prompt_tokens: float | None = None
    completion_tokens: float | None = None
    task_id: str | None = None

    @property
    def error_text(self) -> str:
        return error_text(self.error)

    @property
    def prompt_text(self) -> str:
        """The prompt of an llm_call as sent: the rendered system prompt and prompt."""
        if not isinstance(self.inputs, Mapping):
            return ""
        parts = []
        system = self.inputs.get("system_prompt")
        if system:
            parts.append(f"System:\n{system}")
        prompt = self.inputs.get("prompt")
        if prompt:
            parts.append(f"User:\n{prompt}" if system else str(prompt))
        return "\n\n".join(parts)

    @property
    def response_text(self) -> str:
        """The llm_call reply as text: a string result as is, structured output as indented JSON."""
        if self.result is None:
            return ""
        return self.result if isinstance(self.result, str) else json.dumps(self.result, indent=2, ensure_ascii=False)


def error_text(error: Any) -> str:
    """Return ``kind: message`` of an engine error object, or the text of anything else."""
    if isinstance(error, Mapping):
        kind = error.get("kind")
        message = error.get("message")
        return f"{kind}: {message}" if kind else str(message or "")
    return "" if error is None else str(error)


def build_step_details(
    run_id: str,
    step_key: str,
    record: StepRunRecord | None,
    events: Iterable[Any],
    usage: Sequence[Mapping[str, Any]] = (),
    progress: Sequence[LogLine] = (),
) -> StepDetails:
    """Collect the details of ``step_key`` from its store row, the run's events and usage rows.

    ``events`` are the run's journaled event dicts (or live :class:`RunEvent` objects), in order;
    events of other steps are skipped. ``progress`` contains live progress lines, which the journal
    does not keep.
    """
    details = StepDetails(run_id, step_key, record.step_id if record else step_id_of(step_key))
    if record is not None:
        details.step_type = record.step_type
        details.status = record.status
        details.inputs = record.inputs
        details.result = record.result
        details.error = record.error
        details.started_at = record.started_at
        details.finished_at = record.finished_at
    for event in events:
        kind, key, at, data = event_fields(event)
        if key == step_key:
            _apply(details, kind, at, data)
    details.logs = sorted([*details.logs, *progress], key=lambda line: line.at)[-MAX_LOG_LINES:]
    for row in usage:
        if row.get("step_key") != step_key:
            continue
        quantity = float(row.get("quantity") or 0.0)
        if row.get("kind") == "llm_prompt_tokens":
            details.prompt_tokens = (details.prompt_tokens or 0.0) + quantity
        elif row.get("kind") == "llm_completion_tokens":
            details.completion_tokens = (details.completion_tokens or 0.0) + quantity
    return details


def _apply(details: StepDetails, kind: str, at: float, data: Mapping[str, Any]) -> None:
    attempt = data.get("attempt")
    if isinstance(attempt, int):
        number = attempt
    elif details.attempts:
        number = details.attempts[-1].number
    else:
        number = 1
    if kind == "step_started":
        if isinstance(data.get("step_type"), str) and not details.step_type:
            details.step_type = str(data["step_type"])
        details.attempts.append(Attempt(number, started_at=at))
    elif kind == "step_completed":
        current = _current(details, number, at)
        current.status, current.finished_at = "completed", at
    elif kind == "step_failed":
        message = error_text(data.get("error"))
        error = data.get("error")
        cancelled = isinstance(error, Mapping) and error.get("kind") == "cancelled"
        current = _current(details, number, at)
        current.status = "cancelled" if cancelled else "failed"
        current.finished_at = current.finished_at or at
        current.error = message
    elif kind == "step_retrying":
        previous = _current(details, max(number - 1, 1), at)
        if previous.status == "running":
            previous.status, previous.finished_at = "failed", at
        previous.error = previous.error or error_text(data.get("error"))
        delay = data.get("delay_s")
        previous.retry_delay_s = float(delay) if isinstance(delay, int | float) else None
    elif kind == "step_waiting":
        task_id = data.get("task_id")
        details.task_id = str(task_id) if task_id else None
        if not details.attempts:
            details.attempts.append(Attempt(1, started_at=at, status="waiting"))
    elif kind == "task_resolved":
        decision = data.get("decision")
        details.logs.append(LogLine(at, "info", f"task {data.get('task_id', '')} resolved: {decision}"))
    elif kind == "step_log":
        details.logs.append(LogLine(at, str(data.get("level") or "info"), str(data.get("message") or "")))
    elif kind == "step_progress":
        details.logs.append(progress_line(at, data))
    elif kind == "step_skipped":
        details.logs.append(LogLine(at, "info", f"skipped: {data.get('reason', '')}"))


def progress_line(at: float, data: Mapping[str, Any]) -> LogLine:
    """Return the log line of a ``step_progress`` payload: ``3/10 message``."""
    total = data.get("total")
    progress = _number_text(data.get("progress"))
    amount = f"{progress}/{_number_text(total)}" if total is not None else progress
    return LogLine(at, "progress", f"{amount} {data.get('message') or ''}".strip(), kind="progress")


def _number_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _current(details: StepDetails, number: int, at: float) -> Attempt:
    for attempt in reversed(details.attempts):
        if attempt.number == number:
            return attempt
    attempt = Attempt(number, started_at=None)
    details.attempts.append(attempt)
    return attempt


def value_path(root: str, path: Sequence[str | int]) -> str:
    """Return the template path of a value inside ``root``: ``steps.fetch.result.items[0].email``.

    Keys that are not identifiers are written as ``["key"]``, which templates cannot read yet, so
    the copied path then needs editing.
    """
    text = root
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part):
            text += f".{part}"
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text
