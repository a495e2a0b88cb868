"""The event log panel: a table of run events, newest at the bottom, with streaming events coalesced."""

from __future__ import annotations

import datetime
import json
import logging
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QVBoxLayout, QWidget

from studio.engine.events import EventType, RunEvent
from studio.model.workflow import JsonValue

logger = logging.getLogger(__name__)

COLUMNS = ("Time", "Seq", "Type", "Step", "Message")
MAX_ROWS = 20_000
"""Maximum number of rows. The oldest rows are dropped first, so a long run cannot grow the table without bound."""
MESSAGE_CHARS = 300
"""Maximum message length in a cell, in characters. The tooltip shows up to ten times more."""

Index = QModelIndex | QPersistentModelIndex


@dataclass
class LogRow:
    """One table row. Coalesced streaming events update ``seq``, ``at``, ``message`` and ``count``."""

    run_id: str
    seq: int
    at: float
    type: str
    step_key: str
    message: str
    count: int = 1
    text: str = ""
    """Accumulated LLM text of coalesced ``llm_token_delta`` events."""


class EventLogModel(QAbstractTableModel):
    """Table model of run events.

    Consecutive ephemeral events (``step_progress``, ``llm_token_delta``) of the same run, step and
    type merge into one row that shows the latest progress or the text streamed so far.
    """

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[LogRow] = []

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
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cell(row, index.column())
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 4:
            return row.text[-MESSAGE_CHARS * 10:] if row.text else row.message
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 1:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _cell(self, row: LogRow, column: int) -> str:
        if column == 0:
            return datetime.datetime.fromtimestamp(row.at).strftime("%H:%M:%S.%f")[:-3]
        if column == 1:
            return str(row.seq)
        if column == 2:
            return row.type if row.count == 1 else f"{row.type} ×{row.count}"
        if column == 3:
            return row.step_key
        return row.message

    def rows(self) -> list[LogRow]:
        return list(self._rows)

    def clear(self) -> None:
        self.beginResetModel()
        self._rows.clear()
        self.endResetModel()

    def append_event(self, event: RunEvent) -> None:
        """Add ``event`` as a new row, or merge it into the last row when both are the same stream."""
        last = self._rows[-1] if self._rows else None
        if (
            last is not None
            and event.is_ephemeral
            and last.type == event.type.value
            and last.run_id == event.run_id
            and last.step_key == (event.step_key or "")
        ):
            self._merge(last, event)
            top_left = self.index(len(self._rows) - 1, 0)
            self.dataChanged.emit(top_left, self.index(len(self._rows) - 1, len(COLUMNS) - 1))
            return
        if len(self._rows) >= MAX_ROWS:
            self.beginRemoveRows(QModelIndex(), 0, 0)
            del self._rows[0]
            self.endRemoveRows()
        row = LogRow(event.run_id, event.seq, event.at, event.type.value, event.step_key or "", "")
        self._merge(row, event, first=True)
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows))
        self._rows.append(row)
        self.endInsertRows()

    def _merge(self, row: LogRow, event: RunEvent, first: bool = False) -> None:
        if not first:
            row.count += 1
        row.seq = event.seq
        row.at = event.at
        if event.type == EventType.LLM_TOKEN_DELTA:
            delta = event.data.get("text")
            row.text = (row.text + (delta if isinstance(delta, str) else ""))[-MESSAGE_CHARS * 10:]
            row.message = _one_line(row.text)[-MESSAGE_CHARS:]
        else:
            row.message = describe_event(event)


def describe_event(event: RunEvent) -> str:
    """Return a one-line summary of an event's payload for the message column."""
    data = event.data
    kind = event.type
    if kind == EventType.RUN_CREATED:
        text = f"inputs: {_json(data.get('inputs'))}"
    elif kind == EventType.RUN_COMPLETED:
        text = f"result: {_json(data.get('result'))}"
    elif kind in (EventType.RUN_FAILED, EventType.STEP_FAILED):
        text = _error(data.get("error"))
        if kind == EventType.STEP_FAILED:
            final = data.get("final", True)
            text = f"attempt {data.get('attempt', '?')}{'' if final else ', will retry'}: {text}"
    elif kind == EventType.RUN_STOPPED:
        text = f"cancelled: {_json(data.get('cancelled'))}"
    elif kind == EventType.RUN_WAITING:
        text = f"waiting for tasks {_json(data.get('task_ids'))}"
    elif kind == EventType.STEP_STARTED:
        text = f"{data.get('step_type', '')} attempt {data.get('attempt', 1)}"
    elif kind == EventType.STEP_COMPLETED:
        text = f"took {_seconds(data.get('duration_s'))}; result: {_json(data.get('result'))}"
    elif kind == EventType.STEP_RETRYING:
        text = f"attempt {data.get('attempt', '?')} in {_seconds(data.get('delay_s'))}: {_error(data.get('error'))}"
    elif kind == EventType.STEP_SKIPPED:
        text = str(data.get("reason", ""))
    elif kind == EventType.STEP_WAITING:
        text = f"task {data.get('task_id', '')}"
    elif kind == EventType.TASK_RESOLVED:
        text = f"task {data.get('task_id', '')}: {data.get('decision', '')}"
    elif kind == EventType.STEP_PROGRESS:
        total = data.get("total")
        amount = f"{data.get('progress')}/{total}" if total is not None else f"{data.get('progress')}"
        text = f"{amount} {data.get('message') or ''}".strip()
    elif kind == EventType.STEP_LOG:
        text = f"[{data.get('level', 'info')}] {data.get('message', '')}"
    else:
        text = _json(data) if data else ""
    return _one_line(text)[:MESSAGE_CHARS]


def _json(value: JsonValue) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


def _seconds(value: JsonValue) -> str:
    return f"{float(value):.2f} s" if isinstance(value, int | float) else "? s"


def _error(error: JsonValue) -> str:
    if isinstance(error, dict):
        return f"{error.get('kind', 'error')}: {error.get('message', '')}"
    return str(error or "")


def _one_line(text: str) -> str:
    return " ".join(text.split())


class EventLogPanel(QWidget):
    """Shows an :class:`EventLogModel` and follows new rows unless the user has scrolled up."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = EventLogModel(self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        header = self.table.horizontalHeader()
        # Fixed starting widths: ResizeToContents would measure every row on each insert.
        character = self.table.fontMetrics().horizontalAdvance("0")
        for column, characters in enumerate((14, 6, 22, 20)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, character * characters)
        header.setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)

    def is_following(self) -> bool:
        """Return True when the table is scrolled to the bottom, so new rows scroll into view."""
        scroll_bar = self.table.verticalScrollBar()
        return scroll_bar.value() >= scroll_bar.maximum() - 1

    def append_event(self, event: RunEvent) -> None:
        following = self.is_following()
        self.model.append_event(event)
        if following:
            self.table.scrollToBottom()

    def clear(self) -> None:
        self.model.clear()
