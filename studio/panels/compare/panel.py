"""The run comparison dialog: a table of steps with status, duration and output for runs A and B, and a diff."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.engine.compare import RunComparison
from studio.panels.compare.model import DIFF_COLUMNS, STEP_COLUMNS, diff_rows, step_rows, summary_text

logger = logging.getLogger(__name__)

DIFFERS_COLOR = "#c0392b"


class CompareDialog(QDialog):
    """Shows one :class:`RunComparison`. Selecting a step row lists its output differences below."""

    def __init__(self, comparison: RunComparison, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.comparison = comparison
        self.setWindowTitle(f"Compare runs {comparison.run_a[:8]} and {comparison.run_b[:8]}")
        self.resize(900, 600)
        self.summary_label = QLabel(summary_text(comparison), self)
        self.steps_table = _table(STEP_COLUMNS, self)
        self.steps_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.diff_label = QLabel("Select a step to see how its output differs", self)
        self.diff_table = _table(DIFF_COLUMNS, self)
        lower = QWidget(self)
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.diff_label)
        lower_layout.addWidget(self.diff_table)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(self.steps_table)
        splitter.addWidget(lower)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary_label)
        layout.addWidget(splitter)
        self._fill_steps()
        self.steps_table.currentCellChanged.connect(self._on_steps_table_current_changed)

    def select_step(self, step_key: str) -> bool:
        """Select the row of ``step_key`` and show its diff. Return False when neither run has that key."""
        for row, step in enumerate(self.comparison.steps):
            if step.step_key == step_key:
                self.steps_table.setCurrentCell(row, 0)
                return True
        return False

    def step_cells(self) -> list[list[str]]:
        """Return the text of the steps table, row by row."""
        return _cells(self.steps_table)

    def diff_cells(self) -> list[list[str]]:
        """Return the text of the diff table, row by row."""
        return _cells(self.diff_table)

    def _fill_steps(self) -> None:
        rows = step_rows(self.comparison)
        self.steps_table.setRowCount(len(rows))
        for row, step_row in enumerate(rows):
            for column, text in enumerate(step_row.cells):
                item = QTableWidgetItem(text)
                if step_row.differs:
                    item.setForeground(QColor(DIFFERS_COLOR))
                self.steps_table.setItem(row, column, item)

    def _on_steps_table_current_changed(self, row: int, _column: int, _previous_row: int, _previous: int) -> None:
        if not 0 <= row < len(self.comparison.steps):
            self.diff_table.setRowCount(0)
            return
        step = self.comparison.steps[row]
        rows = diff_rows(step)
        self.diff_label.setText(
            f"Output of {step.step_key}: the same in both runs" if not rows
            else f"Output of {step.step_key}: {len(rows)} differences"
        )
        self._fill_table(self.diff_table, rows)

    def _fill_table(self, table: QTableWidget, rows: Sequence[Sequence[str]]) -> None:
        table.setRowCount(len(rows))
        for row, cells in enumerate(rows):
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                table.setItem(row, column, item)


def _table(columns: Sequence[str], parent: QWidget) -> QTableWidget:
    table = QTableWidget(0, len(columns), parent)
    table.setHorizontalHeaderLabels(list(columns))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.verticalHeader().setVisible(False)
    table.setWordWrap(False)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


def _cells(table: QTableWidget) -> list[list[str]]:
    return [
        [item.text() if (item := table.item(row, column)) is not None else "" for column in range(table.columnCount())]
        for row in range(table.rowCount())
    ]
