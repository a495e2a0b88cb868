"""The runs panel widget: a filterable table of runs that follows engine events and the store."""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QDate,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from studio.engine.events import EventType, RunEvent
from studio.panels.runs.model import (
    ACTIVE_RUN_STATUSES,
    RUN_STATUSES,
    STATUS_AFTER_EVENT,
    RunCatalog,
    RunFilter,
    RunRow,
    day_bounds,
)
from studio.panels.timeline.model import STATUS_COLORS, format_duration
from studio.store import Store

logger = logging.getLogger(__name__)

COLUMNS = ("Run", "Workflow", "Ver.", "Status", "Started", "Duration")
LOAD_LIMIT = 2000
"""Runs read from the store when the list opens. NOTE: older runs are not listed; there is no paging yet."""
POLL_INTERVAL_MS = 2000
"""How often the store is read for runs of other processes (new runs and status changes)."""
DURATION_COLUMN = COLUMNS.index("Duration")
RUN_ID_ROLE = Qt.ItemDataRole.UserRole + 1

Index = QModelIndex | QPersistentModelIndex


class RunsTableModel(QAbstractTableModel):
    """The rows of :class:`RunRow`, newest first, updated one row at a time."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[RunRow] = []
        self._positions: dict[str, int] = {}

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cell(row, column)
        if role == RUN_ID_ROLE:
            return row.run_id
        if role == Qt.ItemDataRole.ToolTipRole:
            owner = f"\nexecuted by {row.owner}" if row.owner else ""
            created = datetime.datetime.fromtimestamp(row.created_at).strftime("%Y-%m-%d %H:%M:%S")
            return f"run {row.run_id}, created {created}\nworkflow {row.workflow_name} version {row.version_number}{owner}"
        if column == 3 and role == Qt.ItemDataRole.DecorationRole:
            return QColor(STATUS_COLORS.get(row.status, STATUS_COLORS["pending"]))
        if column == 3 and role == Qt.ItemDataRole.ForegroundRole:
            return QColor(STATUS_COLORS.get(row.status, STATUS_COLORS["pending"]))
        return None

    def _cell(self, row: RunRow, column: int) -> str:
        if column == 0:
            return row.run_id[:8]
        if column == 1:
            return row.workflow_name
        if column == 2:
            if row.is_test:
                return "test"
            return f"v{row.version_number}" if row.version_number else "?"
        if column == 3:
            return row.status
        if column == 4:
            started = datetime.datetime.fromtimestamp(row.started_at if row.started_at is not None else row.created_at)
            # Today's runs show the time only, which keeps the column narrow; the tooltip has the full date.
            return started.strftime("%H:%M:%S" if started.date() == datetime.date.today() else "%Y-%m-%d %H:%M")
        duration = row.duration(time.time())
        return "" if duration is None else format_duration(duration)

    def rows(self) -> list[RunRow]:
        return list(self._rows)

    def row_of(self, run_id: str) -> RunRow | None:
        position = self._positions.get(run_id)
        return None if position is None else self._rows[position]

    def position(self, run_id: str) -> int | None:
        return self._positions.get(run_id)

    def set_rows(self, rows: list[RunRow]) -> None:
        self.beginResetModel()
        self._rows = sorted(rows, key=lambda row: row.created_at, reverse=True)
        self._reindex()
        self.endResetModel()

    def add_row(self, row: RunRow) -> None:
        """Insert ``row`` at its place by creation time (the top for a new run); replace it if present."""
        if row.run_id in self._positions:
            self.update_row(row)
            return
        position = 0
        while position < len(self._rows) and self._rows[position].created_at > row.created_at:
            position += 1
        self.beginInsertRows(QModelIndex(), position, position)
        self._rows.insert(position, row)
        self._reindex()
        self.endInsertRows()

    def update_row(self, row: RunRow) -> None:
        position = self._positions.get(row.run_id)
        if position is None:
            self.add_row(row)
            return
        self._rows[position] = row
        self.dataChanged.emit(self.index(position, 0), self.index(position, len(COLUMNS) - 1))

    def refresh_durations(self) -> bool:
        """Repaint the duration cells of active runs; return True when there are any."""
        active = [position for position, row in enumerate(self._rows) if row.status in ACTIVE_RUN_STATUSES]
        for position in active:
            self.dataChanged.emit(self.index(position, DURATION_COLUMN), self.index(position, DURATION_COLUMN))
        return bool(active)

    def _reindex(self) -> None:
        self._positions = {row.run_id: position for position, row in enumerate(self._rows)}


class RunsFilterModel(QSortFilterProxyModel):
    """Shows the rows that match :attr:`run_filter`."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.run_filter = RunFilter()

    def set_filter(self, run_filter: RunFilter) -> None:
        self.beginFilterChange()
        self.run_filter = run_filter
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        source = self.sourceModel()
        assert isinstance(source, RunsTableModel)
        return self.run_filter.matches(source.rows()[source_row]) if source_row < source.rowCount() else False


class RunsPanel(QWidget):
    """Lists every run in the store, newest first.

    Call :meth:`set_store` once the store is open. Live events of this process come in through
    :meth:`apply_events`; runs of other processes are picked up by reading the store every
    ``POLL_INTERVAL_MS``, touching only new and active runs.
    """

    sig_run_selected = Signal(str)
    """Emitted with the run id when the user selects a run (not when the selection is cleared)."""
    sig_rerun_requested = Signal(str)
    """Emitted with the run id when the user asks to re-run a run from one of its steps."""
    sig_compare_requested = Signal(str, str)
    """Emitted with two run ids, A then B, when the user asks to compare the two selected runs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.catalog: RunCatalog | None = None
        self.is_live: Callable[[str], bool] = lambda run_id: False
        """Tells whether this process executes a run; those runs are updated from events, not by polling."""
        self.model = RunsTableModel(self)
        self.proxy = RunsFilterModel(self)
        self.proxy.setSourceModel(self.model)
        self._build_filters()
        self._build_table()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(self._filter_row_1)
        layout.addLayout(self._filter_row_2)
        layout.addWidget(self.table)
        self.compare_button = QPushButton("Compare", self)
        self.compare_button.setToolTip("Compare the two selected runs step by step (select two with Ctrl+click)")
        self.compare_button.clicked.connect(self.request_compare)
        self.compare_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.compare_button)
        layout.addLayout(buttons)
        self._duration_timer = QTimer(self)
        self._duration_timer.setInterval(1000)
        self._duration_timer.timeout.connect(self._on_duration_timer_timeout)
        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(POLL_INTERVAL_MS)
        self._poll_timer.timeout.connect(self.poll_store)

    # -- construction ----------------------------------------------------------------------

    def _build_filters(self) -> None:
        self.search_edit = QLineEdit(self)
        self.search_edit.setPlaceholderText("Search run id or workflow name")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.textChanged.connect(self._on_filters_changed)
        self.status_combo = QComboBox(self)
        self.status_combo.addItem("Any status", None)
        for status in RUN_STATUSES:
            self.status_combo.addItem(status, status)
        self.status_combo.currentIndexChanged.connect(self._on_filters_changed)

        self.workflow_combo = QComboBox(self)
        self.workflow_combo.addItem("All workflows", None)
        self.workflow_combo.currentIndexChanged.connect(self._on_workflow_combo_changed)
        self.version_combo = QComboBox(self)
        self.version_combo.addItem("All versions", None)
        self.version_combo.setEnabled(False)
        self.version_combo.currentIndexChanged.connect(self._on_filters_changed)

        self.dates_check = QCheckBox("From", self)
        self.dates_check.setToolTip("Show only runs created between these two days (inclusive)")
        self.dates_check.toggled.connect(self._on_filters_changed)
        today = QDate.currentDate()
        self.since_edit = QDateEdit(today.addDays(-7), self)
        self.until_edit = QDateEdit(today, self)
        for edit in (self.since_edit, self.until_edit):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.dateChanged.connect(self._on_filters_changed)

        self._filter_row_1 = QHBoxLayout()
        self._filter_row_1.addWidget(self.search_edit, 2)
        self._filter_row_1.addWidget(self.status_combo, 1)
        self._filter_row_2 = QHBoxLayout()
        self._filter_row_2.addWidget(self.workflow_combo, 2)
        self._filter_row_2.addWidget(self.version_combo, 1)
        self._filter_row_2.addWidget(self.dates_check)
        self._filter_row_2.addWidget(self.since_edit)
        self._filter_row_2.addWidget(self.until_edit)

    def _build_table(self) -> None:
        self.table = QTableView(self)
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._on_table_context_menu_requested)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        header = self.table.horizontalHeader()
        character = self.table.fontMetrics().horizontalAdvance("0")
        for column, characters in enumerate((9, 15, 4, 13, 9)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, character * characters)
        header.setStretchLastSection(True)
        self.table.selectionModel().currentRowChanged.connect(self._on_table_current_changed)
        self.table.selectionModel().selectionChanged.connect(self._on_table_selection_changed)

    # -- loading ---------------------------------------------------------------------------

    def set_store(self, store: Store) -> None:
        """Read the runs of ``store`` and follow it from now on."""
        self.catalog = RunCatalog(store)
        self.reload()
        self._poll_timer.start()

    def reload(self) -> None:
        """Read the newest runs again and rebuild the list (the selection is kept when possible)."""
        if self.catalog is None:
            return
        selected = self.selected_run_id()
        rows = self.catalog.recent(LOAD_LIMIT)
        self.model.set_rows(rows)
        self._refresh_workflow_choices()
        self._update_duration_timer()
        if selected is not None:
            self.select_run(selected, notify=False)
        logger.debug("runs list loaded %d runs", len(rows))

    def stop_polling(self) -> None:
        self._poll_timer.stop()
        self._duration_timer.stop()

    def apply_events(self, events: list[RunEvent]) -> None:
        """Add new runs and change statuses from a batch of engine events."""
        if self.catalog is None:
            return
        for event in events:
            if event.type == EventType.RUN_CREATED:
                row = self.catalog.row(event.run_id)
                if row is not None:
                    self.model.add_row(row)
                    self._note_workflow(row)
                continue
            status = STATUS_AFTER_EVENT.get(event.type)
            row = self.model.row_of(event.run_id)
            if status is None or row is None:
                continue
            if event.type == EventType.TASK_RESOLVED and row.status != "waiting":
                continue
            row.status = status
            if event.type == EventType.RUN_STARTED and row.started_at is None:
                row.started_at = event.at
            if status in ("completed", "failed", "stopped"):
                row.finished_at = event.at
            self.model.update_row(row)
        self._update_duration_timer()

    def poll_store(self) -> None:
        """Pick up runs that other processes created or changed since the last look."""
        if self.catalog is None:
            return
        for row in self.catalog.recent(20):
            if self.model.row_of(row.run_id) is None:
                self.model.add_row(row)
                self._note_workflow(row)
        for row in self.model.rows():
            if row.status in ACTIVE_RUN_STATUSES and not self.is_live(row.run_id):
                fresh = self.catalog.row(row.run_id)
                if fresh is not None and (fresh.status, fresh.finished_at, fresh.owner) != (
                    row.status,
                    row.finished_at,
                    row.owner,
                ):
                    self.model.update_row(fresh)
        self._update_duration_timer()

    # -- selection -------------------------------------------------------------------------

    def selected_run_id(self) -> str | None:
        index = self.table.selectionModel().currentIndex()
        if not index.isValid():
            return None
        value = index.data(RUN_ID_ROLE)
        return value if isinstance(value, str) else None

    def select_run(self, run_id: str, *, notify: bool = True) -> bool:
        """Select the row of ``run_id``; return False when it is not shown (missing or filtered out)."""
        position = self.model.position(run_id)
        if position is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(position, 0))
        if not index.isValid():
            return False
        if not notify:
            self.table.selectionModel().blockSignals(True)
        try:
            flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
            self.table.selectionModel().setCurrentIndex(index, flags)
        finally:
            self.table.selectionModel().blockSignals(False)
        self.table.scrollTo(index)
        self._on_table_selection_changed()
        return True

    def selected_run_ids(self) -> list[str]:
        """Return the ids of the selected runs, top to bottom."""
        rows = sorted(index.row() for index in self.table.selectionModel().selectedRows())
        return [str(self.proxy.index(row, 0).data(RUN_ID_ROLE)) for row in rows]

    def select_runs(self, run_ids: list[str]) -> None:
        """Select the shown rows of ``run_ids`` (others are skipped) without announcing a run selection."""
        selection = self.table.selectionModel()
        selection.blockSignals(True)
        try:
            selection.clearSelection()
            flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
            for run_id in run_ids:
                position = self.model.position(run_id)
                index = self.proxy.mapFromSource(self.model.index(position, 0)) if position is not None else None
                if index is not None and index.isValid():
                    selection.select(index, flags)
        finally:
            selection.blockSignals(False)
        self._on_table_selection_changed()

    def request_compare(self) -> bool:
        """Emit :attr:`sig_compare_requested` for the two selected runs, the older as A. Return False unless two are selected."""
        run_ids = self.selected_run_ids()
        if len(run_ids) != 2:
            return False
        # The table lists the newest run first, so the lower row is run A.
        self.sig_compare_requested.emit(run_ids[1], run_ids[0])
        return True

    def context_menu(self) -> QMenu:
        """Build the context menu for the current selection: re-run for one run, compare for two."""
        menu = QMenu(self)
        run_ids = self.selected_run_ids()
        rerun = menu.addAction("Re-run from a step…")
        rerun.setEnabled(len(run_ids) == 1)
        rerun.triggered.connect(lambda: self.sig_rerun_requested.emit(run_ids[0]))
        compare = menu.addAction("Compare")
        compare.setEnabled(len(run_ids) == 2)
        compare.triggered.connect(self.request_compare)
        return menu

    def _on_table_context_menu_requested(self, position: QPoint) -> None:
        menu = self.context_menu()
        menu.aboutToHide.connect(menu.deleteLater)
        menu.popup(self.table.viewport().mapToGlobal(position))

    def _on_table_selection_changed(self, *_args: object) -> None:
        self.compare_button.setEnabled(len(self.selected_run_ids()) == 2)

    def visible_run_ids(self) -> list[str]:
        """Return the run ids the table shows, top to bottom."""
        return [str(self.proxy.index(row, 0).data(RUN_ID_ROLE)) for row in range(self.proxy.rowCount())]

    def _on_table_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            run_id = current.data(RUN_ID_ROLE)
            if isinstance(run_id, str):
                self.sig_run_selected.emit(run_id)

    # -- filters ---------------------------------------------------------------------------

    def current_filter(self) -> RunFilter:
        since = until = None
        if self.dates_check.isChecked():
            since, until = day_bounds(_python_date(self.since_edit.date()), _python_date(self.until_edit.date()))
        return RunFilter(
            workflow_id=self.workflow_combo.currentData(),
            version_id=self.version_combo.currentData() if self.version_combo.isEnabled() else None,
            status=self.status_combo.currentData(),
            since=since,
            until=until,
            text=self.search_edit.text(),
        )

    def _on_filters_changed(self, *_args: object) -> None:
        if self.until_edit.date() < self.since_edit.date():
            self.until_edit.setDate(self.since_edit.date())
            return  # setDate calls this method again with a valid range
        self.proxy.set_filter(self.current_filter())

    def _on_workflow_combo_changed(self, _index: int) -> None:
        workflow_id = self.workflow_combo.currentData()
        self.version_combo.blockSignals(True)
        self.version_combo.clear()
        self.version_combo.addItem("All versions", None)
        if workflow_id is not None and self.catalog is not None:
            for version_id, number in reversed(self.catalog.versions_of(workflow_id)):
                self.version_combo.addItem(f"v{number}", version_id)
        self.version_combo.setEnabled(workflow_id is not None)
        self.version_combo.blockSignals(False)
        self._on_filters_changed()

    def _refresh_workflow_choices(self) -> None:
        current = self.workflow_combo.currentData()
        names = {row.workflow_id: row.workflow_name for row in self.model.rows()}
        self.workflow_combo.blockSignals(True)
        self.workflow_combo.clear()
        self.workflow_combo.addItem("All workflows", None)
        for workflow_id, name in sorted(names.items(), key=lambda pair: pair[1].lower()):
            self.workflow_combo.addItem(name, workflow_id)
        position = self.workflow_combo.findData(current)
        self.workflow_combo.setCurrentIndex(max(position, 0))
        self.workflow_combo.blockSignals(False)

    def _note_workflow(self, row: RunRow) -> None:
        if self.workflow_combo.findData(row.workflow_id) < 0:
            self._refresh_workflow_choices()
        if row.workflow_id == self.workflow_combo.currentData() and self.version_combo.findData(row.version_id) < 0:
            self._on_workflow_combo_changed(self.workflow_combo.currentIndex())

    def _update_duration_timer(self) -> None:
        active = any(row.status in ACTIVE_RUN_STATUSES for row in self.model.rows())
        if active and not self._duration_timer.isActive():
            self._duration_timer.start()
        elif not active:
            self._duration_timer.stop()

    def _on_duration_timer_timeout(self) -> None:
        if not self.model.refresh_durations():
            self._duration_timer.stop()


def _python_date(value: QDate) -> datetime.date:
    return datetime.date(value.year(), value.month(), value.day())
