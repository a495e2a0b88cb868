"""Table model and filter proxy of the Command Center inbox: one row per pending human task."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, QSortFilterProxyModel, Qt

from studio.panels.command_center.model import COLUMNS, TIME_LEFT_COLUMN, InboxRow

Index = QModelIndex | QPersistentModelIndex
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
TASK_ID_ROLE = Qt.ItemDataRole.UserRole + 2
AGE_COLUMN = COLUMNS.index("Age")
DUE_SOON_S = 60.0
"""Tasks with less time left than this, in seconds, show their time left in a warning colour."""


class InboxModel(QAbstractTableModel):
    """Rows of pending tasks. Updating keeps rows that stay, so selections survive a refresh."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[InboxRow] = []
        self.now = time.time()
        """Time the Age and Time left cells are computed for; :meth:`tick` advances it."""

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return row.text(column, self.now)
        if role == SORT_ROLE:
            return row.sort_key(column, self.now)
        if role == TASK_ID_ROLE:
            return row.task_id
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"Task {row.task_id}\nRun {row.run_id}\nWorkflow {row.workflow_name} ({row.workflow_id})"
        due_soon = row.due_at is not None and row.due_at - self.now < DUE_SOON_S
        if role == Qt.ItemDataRole.ForegroundRole and column == TIME_LEFT_COLUMN and due_soon:
            return Qt.GlobalColor.darkRed
        return None

    def rows(self) -> list[InboxRow]:
        return list(self._rows)

    def row_at(self, position: int) -> InboxRow:
        return self._rows[position]

    def task_ids(self) -> list[str]:
        return [row.task_id for row in self._rows]

    def row_for(self, task_id: str) -> InboxRow | None:
        return next((row for row in self._rows if row.task_id == task_id), None)

    def set_rows(self, rows: list[InboxRow]) -> list[str]:
        """Replace the rows with ``rows``; return the ids of the tasks that were not shown before."""
        incoming = {row.task_id: row for row in rows}
        for position in range(len(self._rows) - 1, -1, -1):
            if self._rows[position].task_id not in incoming:
                self.beginRemoveRows(QModelIndex(), position, position)
                del self._rows[position]
                self.endRemoveRows()
        listed = set(self.task_ids())
        added = [row for row in rows if row.task_id not in listed]
        if added:
            start = len(self._rows)
            self.beginInsertRows(QModelIndex(), start, start + len(added) - 1)
            self._rows.extend(added)
            self.endInsertRows()
        return [row.task_id for row in added]

    def add_row(self, row: InboxRow) -> bool:
        """Append ``row`` unless its task is shown already; return whether it was added."""
        if self.row_for(row.task_id) is not None:
            return False
        position = len(self._rows)
        self.beginInsertRows(QModelIndex(), position, position)
        self._rows.append(row)
        self.endInsertRows()
        return True

    def remove_task(self, task_id: str) -> bool:
        """Remove the row of ``task_id``; return whether it was shown."""
        for position, row in enumerate(self._rows):
            if row.task_id == task_id:
                self.beginRemoveRows(QModelIndex(), position, position)
                del self._rows[position]
                self.endRemoveRows()
                return True
        return False

    def remove_run(self, run_id: str) -> list[str]:
        """Remove the rows of every task of ``run_id``; return their task ids."""
        removed = [row.task_id for row in self._rows if row.run_id == run_id]
        for task_id in removed:
            self.remove_task(task_id)
        return removed

    def tick(self, now: float | None = None) -> None:
        """Recompute the Age and Time left cells for ``now`` (default: the current time)."""
        self.now = time.time() if now is None else now
        if self._rows:
            top = self.index(0, AGE_COLUMN)
            bottom = self.index(len(self._rows) - 1, TIME_LEFT_COLUMN)
            self.dataChanged.emit(top, bottom, [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ForegroundRole])


class InboxFilterProxy(QSortFilterProxyModel):
    """Filters inbox rows by words in any text column and sorts times numerically."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._filter_text = ""
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def set_filter_text(self, text: str) -> None:
        self.beginFilterChange()
        self._filter_text = text
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if not self._filter_text.strip():
            return True
        model = self.sourceModel()
        assert isinstance(model, InboxModel)
        return model.row_at(source_row).matches(self._filter_text)
