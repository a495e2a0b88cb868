"""Turns a run's event stream into node statuses, with item counts for ``for_each`` containers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from studio.engine.events import EventType, RunEvent
from studio.model.workflow import ForEachStep, JsonValue, Workflow

_ITEM_PREFIX = re.compile(r"(?P<container>[a-z0-9][a-z0-9_-]*)\[(?P<index>\d+)\]$")
_ACTIVE_PRIORITY = ("running", "retrying", "waiting")
_RUN_STATES = {
    EventType.RUN_CREATED: "starting",
    EventType.RUN_STARTED: "running",
    EventType.RUN_RESUMED: "running",
    EventType.RUN_PAUSED: "paused",
    EventType.RUN_WAITING: "waiting",
    EventType.RUN_COMPLETED: "completed",
    EventType.RUN_FAILED: "failed",
    EventType.RUN_STOPPED: "stopped",
}
TERMINAL_RUN_STATES = frozenset({"completed", "failed", "stopped"})


@dataclass(frozen=True)
class StatusUpdate:
    """A node status to show: ``status`` is one of the canvas step statuses."""

    step_id: str
    status: str
    detail: str = ""


def format_duration(seconds: float) -> str:
    """Format a duration for a badge: ``0.42 s``, ``12.3 s`` or ``2 min 05 s``."""
    if seconds < 10.0:
        return f"{seconds:.2f} s"
    if seconds < 60.0:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def split_step_key(step_key: str) -> tuple[str | None, str | None]:
    """Return ``(container id, item key)`` of a body execution key such as ``loop[3].b``.

    The item key is everything before the last dot (``loop[3]``). Top-level keys return (None, None).
    """
    prefix, dot, _step = step_key.rpartition(".")
    if not dot:
        return None, None
    match = _ITEM_PREFIX.search(prefix)
    if match is None:
        return None, None
    return match.group("container"), prefix


@dataclass
class _Container:
    body_ids: set[str]
    total: int | None = None
    items: dict[str, dict[str, str]] = field(default_factory=dict)
    """item key -> body step id -> status of that execution."""
    own_status: str = "pending"
    own_detail: str = ""


class RunStatusTracker:
    """Folds :class:`RunEvent` objects of one run into node statuses and a run state.

    ``run_state`` is ``idle`` before any event, then ``starting``, ``running``, ``paused``, ``waiting``,
    ``completed``, ``failed`` or ``stopped``.
    """

    def __init__(self, workflow: Workflow) -> None:
        self.run_state = "idle"
        self.error = ""
        self._containers = {
            step.id: _Container({body.id for body in step.config.steps})
            for step in workflow.iter_steps()
            if isinstance(step, ForEachStep)
        }
        self._body_container = {
            body_id: container_id
            for container_id, container in self._containers.items()
            for body_id in container.body_ids
        }

    def apply(self, event: RunEvent) -> list[StatusUpdate]:
        """Update the state from ``event`` and return the node statuses that changed because of it."""
        if event.type in _RUN_STATES:
            self.run_state = _RUN_STATES[event.type]
            if event.type == EventType.RUN_FAILED:
                self.error = _error_text(event.data.get("error"))
            return self._stopped_updates(event) if event.type == EventType.RUN_STOPPED else []
        if event.step_key is None or event.step_id is None:
            return []
        status = _step_status(event)
        if status is None:
            if event.type == EventType.STEP_PROGRESS and event.step_id in self._containers:
                total = event.data.get("total")
                if isinstance(total, int):
                    self._containers[event.step_id].total = total
                return [self._container_update(event.step_id)]
            return []
        return self._record(event.step_key, event.step_id, status, _step_detail(event))

    def _record(self, step_key: str, step_id: str, status: str, detail: str) -> list[StatusUpdate]:
        container_id, item_key = split_step_key(step_key)
        if container_id is None or item_key is None or container_id not in self._containers:
            if step_id in self._containers:
                container = self._containers[step_id]
                container.own_status, container.own_detail = status, detail
                return [self._container_update(step_id)]
            return [StatusUpdate(step_id, status, detail)]
        container = self._containers[container_id]
        container.items.setdefault(item_key, {})[step_id] = status
        updates = [self._body_update(container_id, step_id), self._container_update(container_id)]
        if step_id in self._containers:
            # A nested for_each also counts as a body step of its parent.
            updates.append(self._container_update(step_id))
        return updates

    def _body_update(self, container_id: str, step_id: str) -> StatusUpdate:
        container = self._containers[container_id]
        statuses = [item[step_id] for item in container.items.values() if step_id in item]
        total = max(container.total or 0, len(container.items))
        done = sum(1 for status in statuses if status in ("completed", "skipped"))
        detail = f"{done}/{total} items"
        for active in _ACTIVE_PRIORITY:
            if active in statuses:
                return StatusUpdate(step_id, active, detail)
        if "failed" in statuses:
            return StatusUpdate(step_id, "failed", detail)
        return StatusUpdate(step_id, "completed" if done else "pending", detail)

    def _container_update(self, container_id: str) -> StatusUpdate:
        container = self._containers[container_id]
        total = max(container.total or 0, len(container.items))
        done = failed = 0
        for item in container.items.values():
            if "failed" in item.values():
                failed += 1
            elif container.body_ids <= item.keys() and all(s in ("completed", "skipped") for s in item.values()):
                done += 1
        parts = [f"{done}/{total} done"] if total else []
        if failed:
            parts.append(f"{failed} failed")
        if container.own_detail and container.own_status != "running":
            parts.append(container.own_detail)
        return StatusUpdate(container_id, container.own_status, ", ".join(parts))

    def _stopped_updates(self, event: RunEvent) -> list[StatusUpdate]:
        cancelled = event.data.get("cancelled")
        if not isinstance(cancelled, list):
            return []
        updates: list[StatusUpdate] = []
        for key in cancelled:
            if isinstance(key, str):
                step_id = key.rpartition(".")[2]
                updates.extend(self._record(key, step_id, "skipped", "stopped"))
        return updates


def _step_status(event: RunEvent) -> str | None:
    if event.type == EventType.STEP_FAILED:
        return "failed" if event.data.get("final", True) else "retrying"
    return {
        EventType.STEP_STARTED: "running",
        EventType.STEP_COMPLETED: "completed",
        EventType.STEP_RETRYING: "retrying",
        EventType.STEP_SKIPPED: "skipped",
        EventType.STEP_WAITING: "waiting",
        EventType.TASK_RESOLVED: "running",
    }.get(event.type)


def _step_detail(event: RunEvent) -> str:
    data = event.data
    if event.type == EventType.STEP_COMPLETED:
        duration = data.get("duration_s")
        return format_duration(float(duration)) if isinstance(duration, int | float) else ""
    if event.type == EventType.STEP_FAILED:
        return _error_text(data.get("error"))
    if event.type == EventType.STEP_RETRYING:
        delay = data.get("delay_s")
        delay_text = f" in {float(delay):.1f} s" if isinstance(delay, int | float) else ""
        return f"attempt {data.get('attempt', '?')}{delay_text}"
    if event.type == EventType.STEP_STARTED:
        attempt = data.get("attempt")
        return f"attempt {attempt}" if isinstance(attempt, int) and attempt > 1 else ""
    if event.type == EventType.STEP_SKIPPED:
        return str(data.get("reason") or "")
    if event.type == EventType.STEP_WAITING:
        return "waiting for a person"
    if event.type == EventType.TASK_RESOLVED:
        return str(data.get("decision") or "")
    return ""


def _error_text(error: JsonValue) -> str:
    """Return the message of an engine error object (``kind`` and ``message``) or of a plain string."""
    if isinstance(error, dict):
        kind = error.get("kind")
        message = error.get("message")
        return f"{kind}: {message}" if kind else str(message or "")
    return "" if error is None else str(error)
