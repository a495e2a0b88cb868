"""The Command Center panel: an inbox of every pending human task and a view to resolve the selected one."""

from __future__ import annotations

import asyncio
import getpass
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QItemSelection, Qt, QTimer, Signal
from PySide6.QtGui import QHideEvent, QResizeEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from studio.engine.events import RUN_TERMINAL_EVENTS, EventType, RunEvent
from studio.model.workflow import JsonValue
from studio.panels.command_center.inbox import TASK_ID_ROLE, InboxFilterProxy, InboxModel
from studio.panels.command_center.model import (
    TIME_LEFT_COLUMN,
    describe_resolution,
    inbox_row,
    inbox_rows,
    task_subject,
)
from studio.panels.command_center.notifier import TaskNotifier
from studio.panels.command_center.task_view import TaskView
from studio.store import StoreError, TaskRecord

if TYPE_CHECKING:
    from studio.engine import Engine

logger = logging.getLogger(__name__)

REFRESH_INTERVAL_MS = 2000
"""Store refresh while the panel is visible, so tasks created or resolved by other processes appear."""
HIDDEN_REFRESH_INTERVAL_MS = 10_000
"""Store refresh while the panel is hidden; it keeps the pending count of the badge current."""
ENGINE_POLL_INTERVAL_MS = 500
"""How often the engine provider is asked for an engine until it returns one."""
WIDE_LAYOUT_PX = 900
"""Panel width from which the inbox and the task view sit side by side instead of one above the other."""
MIN_SPLIT_PX = 300
"""Smallest splitter length, in pixels, at which the initial split between inbox and task view is set."""
STACKED_INBOX_MIN_PX = 150
STACKED_INBOX_MAX_PX = 260
"""Height range of the inbox when it sits above the task view: room for a filter box and a few rows."""
TICK_INTERVAL_MS = 1000
_DECISION_VERBS = {
    "approve": "Approved",
    "reject": "Rejected",
    "accept": "Accepted",
    "decline": "Declined",
    "cancel": "Cancelled",
}
WORKFLOW_COLUMN_PX = 120
NOTIFY_DELAY_MS = 300
"""Tasks that arrive within this many milliseconds share one desktop notification."""


def badge_text(count: int) -> str:
    """Return the Command Center action's text for ``count`` pending tasks."""
    return f"Command Center ({count})" if count else "Command Center"


class CommandCenterPanel(QWidget):
    """Lists pending human tasks of all runs and workflows, and resolves them through the engine.

    Give it the engine with :meth:`set_engine`. The inbox follows engine events live and re-reads
    the store every few seconds for tasks that other processes (such as the CLI) create or resolve.
    """

    sig_pending_count_changed = Signal(int)
    """Emitted with the number of pending tasks whenever it changes."""
    sig_task_arrived = Signal(str)
    """Emitted with the id of each task that enters the inbox after the first load."""
    sig_task_removed = Signal(str)
    """Emitted with the id of each task that leaves the inbox, for any reason."""
    sig_task_resolved = Signal(str, str)
    """Emitted with the task id and decision after this panel resolved a task."""
    sig_resolve_failed = Signal(str, str)
    """Emitted with the task id and the message shown when resolving from this panel failed."""
    sig_show_requested = Signal()
    """Emitted when the user clicks a new-task notification, so the host can raise the panel."""
    _sig_engine_event = Signal(object)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        refresh_interval_ms: int = REFRESH_INTERVAL_MS,
        hidden_refresh_interval_ms: int = HIDDEN_REFRESH_INTERVAL_MS,
    ) -> None:
        super().__init__(parent)
        self.actor = _default_actor()
        """Name recorded as ``resolved_by`` for decisions made in this panel."""
        self._engine: Engine | None = None
        self._engine_provider: Callable[[], Engine | None] | None = None
        self._unsubscribe: Any = None
        self._loaded = False
        self._pending_count = 0
        self._workflow_names: dict[str, str] = {}
        self._arrivals: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresh_interval_ms = refresh_interval_ms
        self._split_pending = True
        self._hidden_refresh_interval_ms = hidden_refresh_interval_ms

        self.model = InboxModel(self)
        self.proxy = InboxFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.notifier = TaskNotifier(self)
        self.notifier.sig_message_clicked.connect(self.sig_show_requested)
        self._build_widgets()

        self._tick_timer = QTimer(self)
        self._tick_timer.setInterval(TICK_INTERVAL_MS)
        self._tick_timer.timeout.connect(self._on_tick_timer_timeout)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setInterval(hidden_refresh_interval_ms)
        self._refresh_timer.timeout.connect(self._on_refresh_timer_timeout)
        self._notify_timer = QTimer(self)
        self._notify_timer.setSingleShot(True)
        self._notify_timer.setInterval(NOTIFY_DELAY_MS)
        self._notify_timer.timeout.connect(self._on_notify_timer_timeout)
        self._sig_engine_event.connect(self._on_engine_event, Qt.ConnectionType.QueuedConnection)

    def _build_widgets(self) -> None:
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter by title, workflow, run, step or role")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.set_filter_text)
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(TIME_LEFT_COLUMN, Qt.SortOrder.AscendingOrder)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        # The title takes the room the other columns leave. Short columns fit their contents, and the
        # workflow name starts narrow so a long one cannot squeeze the title.
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(1, WORKFLOW_COLUMN_PX)
        header.setMinimumSectionSize(60)
        self.table.selectionModel().selectionChanged.connect(self._on_table_selection_changed)
        self.status_label = QLabel("", self)
        self.status_label.setEnabled(False)

        inbox = QWidget(self)
        inbox_layout = QVBoxLayout(inbox)
        inbox_layout.setContentsMargins(0, 0, 0, 0)
        inbox_layout.addWidget(self.filter_edit)
        inbox_layout.addWidget(self.table)
        inbox_layout.addWidget(self.status_label)
        self.task_view = TaskView(self)
        self.task_view.sig_resolve_requested.connect(self._on_task_view_resolve_requested)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(inbox)
        self.splitter.addWidget(self.task_view)
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.splitter)
        self._update_status_label()

    # -- engine ----------------------------------------------------------------------------

    @property
    def engine(self) -> Engine | None:
        return self._engine

    def set_engine(self, engine: Engine | None) -> None:
        """Follow ``engine``'s events and store (None detaches) and load the pending tasks."""
        if engine is self._engine:
            return
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._engine = engine
        self._loaded = False
        if engine is None:
            self._refresh_timer.stop()
            self.model.set_rows([])
            self.task_view.clear()
            self._update_count()
            return
        self._unsubscribe = engine.add_listener(self._sig_engine_event.emit)
        self.refresh()
        visible = self.isVisible()
        self._refresh_timer.setInterval(self._refresh_interval_ms if visible else self._hidden_refresh_interval_ms)
        self._refresh_timer.start()

    def set_engine_provider(self, provider: Callable[[], Engine | None]) -> None:
        """Ask ``provider`` for the engine until it returns one, for hosts that create the engine later."""
        self._engine_provider = provider
        if self._engine is None:
            self._on_refresh_timer_timeout()
            if self._engine is None:
                self._refresh_timer.setInterval(ENGINE_POLL_INTERVAL_MS)
                self._refresh_timer.start()

    def pending_count(self) -> int:
        return self.model.rowCount()

    def _on_refresh_timer_timeout(self) -> None:
        if self._engine is None and self._engine_provider is not None:
            engine = self._engine_provider()
            if engine is not None:
                self.set_engine(engine)
            return
        self.refresh()

    # -- reading the store -----------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the pending tasks from the store and update the inbox."""
        if self._engine is None:
            return
        try:
            rows = inbox_rows(self._engine.store, self._workflow_names)
        except StoreError as error:
            logger.warning("Cannot read pending tasks: %s", error)
            self.status_label.setText(f"Cannot read pending tasks: {error}")
            return
        before = set(self.model.task_ids())
        added = self.model.set_rows(rows)
        removed = before - {row.task_id for row in rows}
        for task_id in removed:
            self._on_task_gone(task_id)
        if self._loaded:
            self._queue_arrivals(added)
        self._loaded = True
        self.model.tick()
        self._update_count()
        self._open_first_if_idle()

    def _add_task(self, task_id: str) -> None:
        assert self._engine is not None
        store = self._engine.store
        try:
            task = store.get_task(task_id)
            if task.workflow_id not in self._workflow_names:
                self._workflow_names.update(store.workflow_names([task.workflow_id]))
        except StoreError as error:
            logger.warning("Cannot read new task %s: %s", task_id, error)
            return
        if task.status != "pending":
            return
        row = inbox_row(task, self._workflow_names.get(task.workflow_id, task.workflow_id))
        if self.model.add_row(row):
            self.model.tick()
            self._queue_arrivals([task_id])
            self._update_count()
            self._open_first_if_idle()

    def _open_first_if_idle(self) -> None:
        """Open the top row while the task view shows nothing, so a visible inbox always shows a task."""
        if self.task_view.task is None and self.isVisible() and self.proxy.rowCount():
            task_id = self.proxy.index(0, 0).data(TASK_ID_ROLE)
            if isinstance(task_id, str):
                self.open_task(task_id)

    def open_task(self, task_id: str) -> bool:
        """Show the task ``task_id`` in the task view (selecting its row if shown); return False if unreadable."""
        if self._engine is None:
            return False
        store = self._engine.store
        try:
            task = store.get_task(task_id)
            subject = task_subject(store, task)
        except StoreError as error:
            logger.warning("Cannot open task %s: %s", task_id, error)
            self.status_label.setText(f"Cannot open task {task_id[:8]}: {error}")
            return False
        self.task_view.show_task(task, self.model.row_for(task_id), subject)
        if task.status != "pending":
            self.task_view.show_outcome(describe_resolution(task), "warning")
        self._select_row(task_id)
        return True

    def _select_row(self, task_id: str) -> None:
        for position in range(self.proxy.rowCount()):
            index = self.proxy.index(position, 0)
            if index.data(TASK_ID_ROLE) == task_id:
                self.table.selectRow(position)
                return

    # -- events ----------------------------------------------------------------------------

    def _on_engine_event(self, event: RunEvent) -> None:
        if self._engine is None:
            return
        if event.type == EventType.STEP_WAITING:
            task_id = event.data.get("task_id")
            if isinstance(task_id, str):
                self._add_task(task_id)
        elif event.type == EventType.TASK_RESOLVED:
            task_id = event.data.get("task_id")
            if isinstance(task_id, str) and self.model.remove_task(task_id):
                self._on_task_gone(task_id)
                self._update_count()
        elif event.type in RUN_TERMINAL_EVENTS:
            for task_id in self.model.remove_run(event.run_id):
                self._on_task_gone(task_id)
            displayed = self.task_view.task
            if displayed is not None and displayed.run_id == event.run_id:
                self._show_task_ended(displayed.id)
            self._update_count()

    def _on_task_gone(self, task_id: str) -> None:
        self.sig_task_removed.emit(task_id)
        self._show_task_ended(task_id)

    def _show_task_ended(self, task_id: str) -> None:
        """Say in the task view how ``task_id`` ended, if it is shown and this panel did not resolve it."""
        displayed = self.task_view.task
        if displayed is None or displayed.id != task_id or self.task_view.settled or self._engine is None:
            return
        try:
            task = self._engine.store.get_task(task_id)
        except StoreError as error:
            logger.warning("Cannot read task %s after it left the inbox: %s", task_id, error)
            self.task_view.show_outcome(f"This task is no longer pending ({error}).", "warning")
            return
        if task.status != "pending":
            self.task_view.show_outcome(describe_resolution(task), "warning")

    def _on_table_selection_changed(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        if not indexes:
            return
        task_id = indexes[0].data(TASK_ID_ROLE)
        displayed = self.task_view.task
        if isinstance(task_id, str) and (displayed is None or displayed.id != task_id):
            self.open_task(task_id)

    # -- resolving -------------------------------------------------------------------------

    def _on_task_view_resolve_requested(self, task_id: str, decision: str, values: dict[str, JsonValue]) -> None:
        self._spawn(self.resolve(task_id, decision, values))

    async def resolve(self, task_id: str, decision: str, values: dict[str, JsonValue]) -> bool:
        """Resolve ``task_id`` through the engine; return whether this call's decision was applied.

        When another window or process resolved the task first, the task view says by whom and the
        row leaves the inbox. Invalid values leave the task open with the engine's message.
        """
        from studio.engine import EngineError

        engine = self._engine
        if engine is None:
            self._report_failure(task_id, "The engine is not running yet, so the task cannot be resolved.", False)
            return False
        self.task_view.set_busy(True)
        try:
            await engine.resolve_task(task_id, decision, values, actor=self.actor)
        except (EngineError, StoreError) as error:
            logger.info("Resolving task %s as %s failed: %s", task_id, decision, error)
            self._on_resolve_error(task_id, str(error))
            return False
        verb = _DECISION_VERBS.get(decision, decision.capitalize())
        if self._is_shown(task_id):
            self.task_view.show_outcome(f"{verb} by {self.actor}. The run continues.", "info")
        if self.model.remove_task(task_id):
            self.sig_task_removed.emit(task_id)
            self._update_count()
        self.sig_task_resolved.emit(task_id, decision)
        return True

    def _on_resolve_error(self, task_id: str, message: str) -> None:
        assert self._engine is not None
        try:
            task: TaskRecord | None = self._engine.store.get_task(task_id)
        except StoreError:
            task = None
        if task is not None and task.status != "pending":
            if self.model.remove_task(task_id):
                self.sig_task_removed.emit(task_id)
                self._update_count()
            self._report_failure(task_id, describe_resolution(task), True)
        else:
            self._report_failure(task_id, message, False)

    def _report_failure(self, task_id: str, message: str, final: bool) -> None:
        if self._is_shown(task_id):
            self.task_view.show_outcome(message, "warning" if final else "error", final=final)
            if not final:
                self.task_view.set_busy(False)
        self.sig_resolve_failed.emit(task_id, message)

    def _is_shown(self, task_id: str) -> bool:
        return self.task_view.task is not None and self.task_view.task.id == task_id

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._on_spawned_done)

    def _on_spawned_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        logger.error("Resolving a task failed unexpectedly: %s", error, exc_info=error)
        self.task_view.show_outcome(f"Resolving the task failed: {error}", "error", final=False)
        self.task_view.set_busy(False)

    # -- counts, notifications and timers --------------------------------------------------

    def _update_count(self) -> None:
        count = self.pending_count()
        self._update_status_label()
        if count != self._pending_count:
            self._pending_count = count
            self.sig_pending_count_changed.emit(count)

    def _update_status_label(self) -> None:
        count = self.model.rowCount()
        if self._engine is None:
            self.status_label.setText("The engine is not running; tasks appear once it starts.")
        else:
            self.status_label.setText(f"{count} pending task{'s' if count != 1 else ''}")

    def _queue_arrivals(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            self.sig_task_arrived.emit(task_id)
        if task_ids:
            self._arrivals.extend(task_ids)
            self._notify_timer.start()

    def _on_notify_timer_timeout(self) -> None:
        arrivals = [task_id for task_id in self._arrivals if self.model.row_for(task_id) is not None]
        self._arrivals.clear()
        if not arrivals:
            return
        if len(arrivals) == 1:
            row = self.model.row_for(arrivals[0])
            assert row is not None
            self.notifier.notify("New task", f"{row.title} ({row.workflow_name})")
        else:
            self.notifier.notify("New tasks", f"{len(arrivals)} tasks are waiting for you in the Command Center")

    def _on_tick_timer_timeout(self) -> None:
        self.model.tick()
        self.task_view.tick()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._split_pending:
            self._apply_split()
        self._tick_timer.start()
        if self._engine is not None:
            self._refresh_timer.setInterval(self._refresh_interval_ms)
            self.refresh()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._tick_timer.stop()
        if self._engine is not None:
            self._refresh_timer.setInterval(self._hidden_refresh_interval_ms)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        wide = event.size().width() >= WIDE_LAYOUT_PX
        orientation = Qt.Orientation.Horizontal if wide else Qt.Orientation.Vertical
        if self.splitter.orientation() != orientation:
            self.splitter.setOrientation(orientation)
            self._split_pending = True
        if self._split_pending and self.isVisible():
            self._apply_split()

    def _apply_split(self) -> None:
        """Give the inbox 3 : 2 of the width side by side; stacked, a few rows while the task view takes the rest.

        Waits for a splitter of a usable size, because sizes set while the dock is still being laid
        out would squeeze the task view.
        """
        wide = self.splitter.orientation() == Qt.Orientation.Horizontal
        if (self.splitter.width() if wide else self.splitter.height()) < MIN_SPLIT_PX:
            return
        self._split_pending = False
        if wide:
            self.splitter.setStretchFactor(0, 3)
            self.splitter.setStretchFactor(1, 2)
            total = self.splitter.width()
            inbox_size = total * 3 // 5
        else:
            self.splitter.setStretchFactor(0, 0)
            self.splitter.setStretchFactor(1, 1)
            total = self.splitter.height()
            inbox_size = min(max(total // 3, STACKED_INBOX_MIN_PX), STACKED_INBOX_MAX_PX)
        self.splitter.setSizes([inbox_size, total - inbox_size])

    def close_panel(self) -> None:
        """Stop the timers, detach from the engine and remove the tray icon. Call it before closing the window."""
        self._tick_timer.stop()
        self._refresh_timer.stop()
        self._notify_timer.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in list(self._tasks):
            task.cancel()
        self.notifier.close()


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local user"
