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


BACKGROUND_COMMIT_ROWS = 2000
"""Batches with at least this many rows are committed on the store's writer thread.

Smaller batches commit on the event loop's thread. The writer thread needs the GIL to bind each
row, and while the loop is busy (running Lua steps, say) it waited for the GIL in slices of up to
5 ms (Python's switch interval): a batch of a few hundred rows then took up to a second, and the
events of Lua chains reached subscribers 70-175 ms late instead of within ``LAZY_COMMIT_S``. Inline,
such a batch takes a few milliseconds of the loop. Only very large batches, which would hold the
loop for longer than a frame, go to the writer thread.
"""


LAZY_COMMIT_S = 0.01
"""Time a record made with :meth:`Journal.schedule_lazy` waits for its commit, unless one is requested sooner.

Only records that no one outside the run depends on yet wait this long: the starts and completions
of pure steps. Their events reach subscribers about this much later (plus the commit itself), and
one commit covers many of them instead of one transaction per step.
"""


class Journal:
    """Buffers one run's state changes and commits them together before announcing their events.

    Changes recorded during one pass of the event loop share a transaction: ``flush()`` schedules a
    commit with ``call_soon`` and every coroutine that records a change before it runs joins it.
    While a background commit is in flight, new changes collect for the next one (group commit),
    so at most one commit of a run is in flight and commits land in order. Records scheduled
    with :meth:`schedule_lazy` wait up to ``LAZY_COMMIT_S`` for a commit that anything else asks
    for sooner. Ephemeral events (progress, token deltas) are never written, but they wait behind
    unannounced journaled events so subscribers always see events in ``seq`` order.
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
        self._in_flight = False
        self._urgent = False
        """Whether a prompt commit of what is recorded now was requested."""
        self._lazy_timer: asyncio.TimerHandle | None = None

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
            if self._pending_events or self._in_flight:
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
        self._batch.add_step_row({"run_id": self._run_id, **row})
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
        if not self._scheduled and not self._in_flight and not self._batch and not self._pending_events:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._schedule()
        await future

    def commit_inline(self) -> bool:
        """Commit and announce what is recorded right now, unless a background commit is in flight.

        Returns whether it committed. A caller that knows no other coroutine of the run can join
        the batch in this pass (a lone running step) saves the two event-loop passes of
        :meth:`flush`; a False return means it must ``await flush()`` instead.
        """
        if self._in_flight:
            return False
        self._cancel_lazy_timer()
        self._urgent = False
        batch, events, waiters = self._take()
        try:
            self._store.commit(batch)
        except Exception as error:
            self._fail(error, waiters)
            raise
        self._announce_committed(events, waiters)
        return True

    def flush_now(self) -> None:
        """Commit and announce synchronously (used when the loop is about to stop).

        A background commit still in flight is not waited for here: the store's writer thread
        finishes it (``Store.close`` joins that thread), but its events are not announced.
        """
        self._commit(inline=True)

    def schedule(self) -> None:
        """Commit what is recorded (deferred records included) soon, without waiting for it."""
        if self._batch or self._pending_events:
            self._schedule()

    def schedule_lazy(self) -> None:
        """Commit what is recorded within ``LAZY_COMMIT_S``, or sooner if a commit is requested meanwhile."""
        if self._scheduled or self._in_flight or self._lazy_timer is not None:
            return
        if self._batch or self._pending_events:
            self._lazy_timer = asyncio.get_running_loop().call_later(LAZY_COMMIT_S, self._on_lazy_timer)

    def _schedule(self) -> None:
        self._urgent = True
        # While a background commit is in flight, its completion schedules the next commit.
        if not self._scheduled and not self._in_flight:
            self._cancel_lazy_timer()
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._commit)

    def _on_lazy_timer(self) -> None:
        self._lazy_timer = None
        if not self._scheduled and not self._in_flight:
            self._commit()

    def _cancel_lazy_timer(self) -> None:
        if self._lazy_timer is not None:
            self._lazy_timer.cancel()
            self._lazy_timer = None

    def _commit(self, *, inline: bool = False) -> None:
        self._scheduled = False
        if self._in_flight and not inline:
            return
        self._cancel_lazy_timer()
        self._urgent = False
        batch, events, waiters = self._take()
        rows = len(batch.step_rows) + len(batch.event_rows) + len(batch.usage_rows) + len(batch.task_rows)
        if not inline and rows >= BACKGROUND_COMMIT_ROWS:
            self._in_flight = True
            loop = asyncio.get_running_loop()
            future = asyncio.wrap_future(self._store.commit_in_background(batch), loop=loop)
            future.add_done_callback(lambda done: self._on_background_commit(done, events, waiters))
            return
        try:
            self._store.commit(batch)
        except Exception as error:
            self._fail(error, waiters)
            return
        self._announce_committed(events, waiters)

    def _take(self) -> tuple[JournalBatch, list[RunEvent], list[asyncio.Future[None]]]:
        batch, self._batch = self._batch, JournalBatch(self._run_id)
        events, self._pending_events = self._pending_events, []
        waiters, self._waiters = self._waiters, []
        return batch, events, waiters

    def _on_background_commit(
        self, done: asyncio.Future[None], events: list[RunEvent], waiters: list[asyncio.Future[None]]
    ) -> None:
        self._in_flight = False
        error = None if done.cancelled() else done.exception()
        if done.cancelled() or error is not None:
            self._fail(error if isinstance(error, Exception) else RuntimeError("journal commit cancelled"), waiters)
        else:
            self._announce_committed(events, waiters)
        if self._urgent or self._waiters:
            self._schedule()
        else:
            self.schedule_lazy()

    def _fail(self, error: Exception, waiters: list[asyncio.Future[None]]) -> None:
        logger.error("Journal commit failed for run %s: %s", self._run_id, error, exc_info=error)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    def _announce_committed(self, events: list[RunEvent], waiters: list[asyncio.Future[None]]) -> None:
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
