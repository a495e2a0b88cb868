"""The Problems panel widget: a table of findings that selects the step and field of a clicked row."""

from __future__ import annotations

import logging

from PySide6.QtCore import QModelIndex, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from studio.model.validation import Finding
from studio.panels.problems.model import ProblemsModel

logger = logging.getLogger(__name__)


class ProblemsPanel(QWidget):
    """Lists the findings of the last validation; activating a row asks to show its step and field."""

    sig_problem_activated = Signal(str, str)
    """Emitted with the step id and field path of a clicked row. Either is empty for workflow-level
    findings (the field path is then a document path such as ``edges[3]``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ProblemsModel(self)
        self.summary_label = QLabel("No problems", self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.clicked.connect(self._on_table_clicked)
        self.table.activated.connect(self._on_table_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.table, 1)

    def set_findings(self, findings: list[Finding]) -> None:
        """Show ``findings`` and update the error and warning counts."""
        self.model.set_findings(findings)
        errors, warnings = self.model.counts()
        if not errors and not warnings:
            self.summary_label.setText("No problems")
        else:
            self.summary_label.setText(f"{errors} error(s), {warnings} warning(s)")

    def activate_row(self, row: int) -> None:
        """Act as if the user clicked ``row``."""
        self._on_table_clicked(self.model.index(row, 0))

    def _on_table_clicked(self, index: QModelIndex) -> None:
        if not index.isValid():
            return
        finding = self.model.finding(index.row())
        logger.debug("problem %s activated on step %s", finding.code, finding.step_id)
        self.sig_problem_activated.emit(finding.step_id or "", finding.field_path or "")
