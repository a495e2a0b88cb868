"""Typed run events: what the engine announces to subscribers (CLI, UI, tests) and journals."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue


class EventType(enum.StrEnum):
    """Kinds of run event. Names are past tense; the value is what the journal stores."""

    RUN_CREATED = "run_created"
    RUN_STARTED = "run_started"
    RUN_PAUSED = "run_paused"
    RUN_RESUMED = "run_resumed"
    RUN_WAITING = "run_waiting"
    """Nothing can run until a human task is resolved; ``data.task_ids`` lists the tasks."""
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_STOPPED = "run_stopped"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    STEP_RETRYING = "step_retrying"
    STEP_SKIPPED = "step_skipped"
    STEP_WAITING = "step_waiting"
    """A human task was created for the step; ``data.task_id`` names it."""
    STEP_PROGRESS = "step_progress"
    STEP_LOG = "step_log"
    LLM_TOKEN_DELTA = "llm_token_delta"
    TASK_RESOLVED = "task_resolved"


RUN_TERMINAL_EVENTS = frozenset({EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_STOPPED})

EPHEMERAL_EVENTS = frozenset({EventType.STEP_PROGRESS, EventType.LLM_TOKEN_DELTA})
"""Events that are announced but not journaled: they change no state and can arrive many times a second."""


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of one run.

    ``seq`` increases by one per event within a run, journaled or not, so subscribers can order and
    de-duplicate. ``step_key`` identifies a step execution: the step id at top level, and
    ``<for_each id>[<index>].<body step id>`` inside a fan-out. ``at`` is Unix time in seconds.

    Payload keys by type:

    - run_created: ``workflow_id``, ``version_id``, ``inputs``
    - run_completed: ``result``; run_failed: ``error``; run_stopped: ``cancelled`` (step keys)
    - step_started: ``attempt``, ``step_type``; step_completed: ``result``, ``duration_s``
    - step_failed: ``error`` (object with ``kind``, ``message``), ``attempt``, ``final`` (bool)
    - step_retrying: ``attempt`` (the next one), ``delay_s``, ``error``
    - step_skipped: ``reason``; step_waiting / task_resolved: ``task_id``, and for task_resolved
      ``decision`` and ``values``
    - step_progress: ``progress``, ``total`` (or null), ``message``; step_log: ``level``, ``message``
    - llm_token_delta: ``text``
    """

    run_id: str
    seq: int
    type: EventType
    step_key: str | None = None
    step_id: str | None = None
    data: dict[str, JsonValue] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    @property
    def is_ephemeral(self) -> bool:
        return self.type in EPHEMERAL_EVENTS

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict, as the CLI's ``--json`` output prints it."""
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "type": self.type.value,
            "step_key": self.step_key,
            "step_id": self.step_id,
            "at": self.at,
            "data": self.data,
        }
