"""Queues engine events for the UI and delivers them to panels in batches, at most once per frame."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer, Signal

from studio.engine.events import RunEvent

logger = logging.getLogger(__name__)

FRAME_INTERVAL_MS = 16
"""Minimum time between two deliveries, in milliseconds: about one frame at 60 Hz."""


class EventBatcher(QObject):
    """Collects :class:`RunEvent` objects and emits them as lists, in arrival order.

    :meth:`push` only appends to a queue and arms a single-shot timer, so an engine listener
    stays cheap however fast events arrive. Receivers see one :attr:`sig_events_delivered`
    per timer period with every event queued since the last one. With ``immediate`` set,
    each event is delivered on its own at once (the unbatched baseline the benchmark compares
    against).
    """

    sig_events_delivered = Signal(list)
    """Emitted with a non-empty list of :class:`RunEvent`, oldest first."""

    def __init__(self, parent: QObject | None = None, *, interval_ms: int = FRAME_INTERVAL_MS) -> None:
        super().__init__(parent)
        if interval_ms < 0:
            raise ValueError(f"interval_ms must be 0 or more, got {interval_ms}")
        self.immediate = False
        self.deliveries = 0
        """Number of :attr:`sig_events_delivered` emissions so far."""
        self.delivered_events = 0
        """Number of events delivered so far."""
        self._queue: list[RunEvent] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.flush)

    def pending(self) -> int:
        """Return the number of queued events not delivered yet."""
        return len(self._queue)

    def push(self, event: RunEvent) -> None:
        """Queue ``event``; it is delivered within one timer period."""
        if self.immediate:
            self._deliver([event])
            return
        self._queue.append(event)
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Deliver every queued event now, as one batch (nothing happens when the queue is empty)."""
        self._timer.stop()
        if not self._queue:
            return
        batch, self._queue = self._queue, []
        self._deliver(batch)

    def clear(self) -> None:
        """Drop queued events without delivering them."""
        self._timer.stop()
        self._queue.clear()

    def _deliver(self, batch: list[RunEvent]) -> None:
        self.deliveries += 1
        self.delivered_events += len(batch)
        self.sig_events_delivered.emit(batch)
