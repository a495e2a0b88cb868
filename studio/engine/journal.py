"""Group commit of a run's state changes: persist first, then announce, in order."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import JsonValue

from studio.engine.events import EventType, RunEvent
from studio.store import JournalBatch, Store

logger = logging.getLogger(__name__)

Announce = Callable[[RunEvent], None]


class Journal:
    """Buffers one run's state changes and commits them together before announcing their events.

    Changes recorded during one pass of the event loop share a transaction: ``flush()`` schedules a
    commit with ``call_soon`` and every coroutine that records a change before it runs joins it.
    Ephemeral events (progress, token deltas) are never written, but they wait behind unannounced
    journaled events so subscribers always see events in ``seq`` order.
    """

    def __init__(self, store: Store, run_id: str, announce: Announce, last_seq: int) -> None:
        self._store = store
        self._run_id = run_id
        self._announce = announce
        self._seq = last_seq
        self._batch = JournalBatch(run_id)
        self._pending_events: list[RunEvent] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled = False

    @property
    def last_seq(self) -> int:
        return self._seq

    def event(
        self,
        event_type: EventType,
        *,
        step_key: str | None = None,
        step_id: str | None = None,
        data: dict[str, JsonValue] | None = None,
        defer: bool = False,
    ) -> RunEvent:
        """Record an event; journaled kinds are written with the next commit.

        With ``defer`` the record waits for the next commit someone else triggers (see
        :meth:`schedule`) instead of scheduling one.
        """
        self._seq += 1
        event = RunEvent(self._run_id, self._seq, event_type, step_key, step_id, data or {}, time.time())
        if event.is_ephemeral:
            if self._pending_events:
                self._pending_events.append(event)
            else:
                self._safe_announce(event)
            return event
        self._batch.event_rows.append(
            {
                "run_id": self._run_id,
                "seq": event.seq,
                "type": event.type.value,
                "step_key": step_key,
                "at": event.at,
                "data": event.data,
            }
        )
        self._pending_events.append(event)
        if not defer:
            self._schedule()
        return event

    def step_row(self, row: dict[str, Any], *, defer: bool = False) -> None:
        self._batch.step_rows.append({"run_id": self._run_id, **row})
        if not defer:
            self._schedule()

    def run_changes(self, **changes: Any) -> None:
        self._batch.run_changes.update(changes)
        self._schedule()

    def task_row(self, row: dict[str, Any]) -> None:
        self._batch.task_rows.append({"run_id": self._run_id, **row})
        self._schedule()

    def usage_row(self, row: dict[str, Any], *, defer: bool = False) -> None:
        self._batch.usage_rows.append({"run_id": self._run_id, **row})
        if not defer:
            self._schedule()

    async def flush(self) -> None:
        """Wait until everything recorded so far is committed and announced."""
        if not self._scheduled and not self._batch and not self._pending_events:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._schedule()
        await future

    def flush_now(self) -> None:
        """Commit and announce synchronously (used when the loop is about to stop)."""
        self._commit()

    def schedule(self) -> None:
        """Commit what is recorded (deferred records included) soon, without waiting for it."""
        if self._batch or self._pending_events:
            self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._commit)

    def _commit(self) -> None:
        self._scheduled = False
        batch, self._batch = self._batch, JournalBatch(self._run_id)
        events, self._pending_events = self._pending_events, []
        waiters, self._waiters = self._waiters, []
        try:
            self._store.commit(batch)
        except Exception as error:
            logger.exception("Journal commit failed for run %s", self._run_id)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
            return
        for event in events:
            self._safe_announce(event)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _safe_announce(self, event: RunEvent) -> None:
        try:
            self._announce(event)
        except Exception:
            logger.exception("Event subscriber failed on %s of run %s", event.type.value, self._run_id)
