"""Table model of validation findings: severity, code, step, field and message per row."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

from studio.model.validation import Finding

PROBLEM_COLUMNS = ("Severity", "Code", "Step", "Field", "Message")
_SEVERITY_ORDER = {"error": 0, "warning": 1}
_SEVERITY_COLORS = {"error": QColor("#b00020"), "warning": QColor("#9a6700")}

ModelIndex = QModelIndex | QPersistentModelIndex


class ProblemsModel(QAbstractTableModel):
    """Findings sorted errors first, then in the order validation reported them."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._findings: list[Finding] = []

    def set_findings(self, findings: list[Finding]) -> None:
        """Replace the rows; an unchanged list leaves the view (and its selection) alone."""
        ordered = sorted(findings, key=lambda finding: _SEVERITY_ORDER.get(finding.severity, 2))
        if ordered == self._findings:
            return
        self.beginResetModel()
        self._findings = ordered
        self.endResetModel()

    def finding(self, row: int) -> Finding:
        return self._findings[row]

    def findings(self) -> list[Finding]:
        return list(self._findings)

    def counts(self) -> tuple[int, int]:
        """Return ``(errors, warnings)``."""
        errors = sum(1 for finding in self._findings if finding.severity == "error")
        return errors, len(self._findings) - errors

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._findings)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(PROBLEM_COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return PROBLEM_COLUMNS[section]
        return None

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        finding = self._findings[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            values = (finding.severity, finding.code, finding.step_id or "", finding.field_path or "", finding.message)
            return values[column]
        if role == Qt.ItemDataRole.ToolTipRole:
            return finding.message
        if role == Qt.ItemDataRole.ForegroundRole and column == 0:
            return _SEVERITY_COLORS.get(finding.severity)
        return None
