"""Owns the store and engine for the window and turns engine callbacks into Qt signals."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from studio.engine.events import RUN_TERMINAL_EVENTS, EventType, RunEvent
from studio.model.workflow import JsonValue, Workflow

if TYPE_CHECKING:
    from studio.engine import Engine
    from studio.store import Store

logger = logging.getLogger(__name__)


class RunController(QObject):
    """Starts and steers runs of the open workflow, one at a time.

    The store and engine are created on the first run, inside the running asyncio loop, as the
    engine requires. Every event of the current run is re-emitted as :attr:`sig_event_received`,
    in order, in the GUI thread.
    """

    sig_event_received = Signal(object)
    """Emitted with each :class:`RunEvent` of the current run."""
    sig_run_started = Signal(str)
    """Emitted with the run id once the engine has created the run."""
    sig_run_finished = Signal(str, str)
    """Emitted with the run id and its final status (``completed``, ``failed`` or ``stopped``)."""

    def __init__(self, store_path: Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store_path = store_path
        self._store: Store | None = None
        self._engine: Engine | None = None
        self._unsubscribe: Any = None
        self._run_id: str | None = None
        self._starting = False
        self._early_events: list[RunEvent] = []

    @property
    def run_id(self) -> str | None:
        """Id of the current or last run, None before the first run."""
        return self._run_id

    @property
    def engine(self) -> Engine | None:
        return self._engine

    def _ensure_engine(self) -> Engine:
        if self._engine is None:
            from studio.engine import Engine
            from studio.startup import freeze_startup_objects
            from studio.store import open_store

            self._store = open_store(self._store_path)
            self._engine = Engine(self._store)
            freeze_startup_objects()
            self._unsubscribe = self._engine.add_listener(self._on_engine_event)
            logger.info("engine started with store %s", self._store_path or "in the user data directory")
        return self._engine

    async def resume_interrupted(self) -> list[str]:
        """Continue the runs a crashed studio or CLI left behind; return their ids."""
        run_ids = await self._ensure_engine().resume_interrupted()
        for run_id in run_ids:
            logger.info("Resumed interrupted run %s", run_id)
        return run_ids

    async def start(self, workflow: Workflow, inputs: dict[str, JsonValue]) -> str:
        """Publish ``workflow`` (a no-op when unchanged), start a run with ``inputs`` and return its id.

        Raises whatever the store or engine raise for an invalid workflow or inputs.
        """
        engine = self._ensure_engine()
        self._starting = True
        self._early_events.clear()
        try:
            # Validates first, so a workflow with errors is neither published nor run.
            run_id = await engine.run_workflow(workflow, inputs, note="run from the studio window")
        finally:
            self._starting = False
        self._run_id = run_id
        logger.info("run %s started for workflow %s", run_id, workflow.id)
        self.sig_run_started.emit(run_id)
        early = [event for event in self._early_events if event.run_id == run_id]
        self._early_events.clear()
        for event in early:
            self._forward(event)
        return run_id

    async def pause(self) -> None:
        if self._engine is not None and self._run_id is not None:
            await self._engine.pause(self._run_id)

    async def resume(self) -> None:
        if self._engine is not None and self._run_id is not None:
            await self._engine.resume(self._run_id)

    async def stop(self) -> None:
        if self._engine is not None and self._run_id is not None:
            await self._engine.stop(self._run_id)

    async def aclose(self) -> None:
        """Close the engine and the store. The controller cannot start runs afterwards."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._engine is not None:
            await self._engine.aclose()
            self._engine = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def _on_engine_event(self, event: RunEvent) -> None:
        if self._starting and event.run_id != self._run_id:
            # start_run has not returned the new id yet: keep the events until it has.
            self._early_events.append(event)
            return
        if event.run_id == self._run_id:
            self._forward(event)

    def _forward(self, event: RunEvent) -> None:
        self.sig_event_received.emit(event)
        if event.type in RUN_TERMINAL_EVENTS:
            status = {
                EventType.RUN_COMPLETED: "completed",
                EventType.RUN_FAILED: "failed",
                EventType.RUN_STOPPED: "stopped",
            }[event.type]
            logger.info("run %s finished: %s", event.run_id, status)
            self.sig_run_finished.emit(event.run_id, status)
