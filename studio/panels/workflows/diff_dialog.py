"""The visual diff: two canvases that color added, removed, changed and moved steps, and a field table."""

from __future__ import annotations

import json
import logging

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QGraphicsRectItem,
    QGraphicsView,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.canvas.scene import WorkflowScene
from studio.model.diff import WorkflowDiff, diff_workflows
from studio.model.workflow import Workflow

logger = logging.getLogger(__name__)

STATUS_COLORS = {"added": "#2e9d4f", "removed": "#d64545", "changed": "#e0a020", "moved": "#3f7fd6"}
"""Outline color of each kind of step difference (green, red, amber, blue)."""
TABLE_COLUMNS = ("Step", "Change", "Field", "Old", "New")
MARKER_MARGIN = 6.0
MARKER_Z = 50.0
VALUE_TEXT_LIMIT = 200


def _value_text(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= VALUE_TEXT_LIMIT else text[: VALUE_TEXT_LIMIT - 1] + "…"


class DiffCanvas(QGraphicsView):
    """A read-only canvas of one side of a diff, with colored outlines around differing steps."""

    def __init__(self, workflow: Workflow, title: str, parent: QWidget | None = None) -> None:
        self.diff_scene = WorkflowScene()
        super().__init__(self.diff_scene, parent)
        self.diff_scene.setParent(self)
        self.title = title
        self.setInteractive(False)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.diff_scene.set_workflow(workflow)
        self.markers: dict[str, str] = {}
        """Step id to the difference its outline shows."""

    def mark(self, step_id: str, status: str) -> bool:
        """Outline the node of ``step_id`` in the color of ``status``; return False when it has no node."""
        node = self.diff_scene.node_item(step_id)
        if node is None:
            return False
        rect = node.sceneBoundingRect().adjusted(-MARKER_MARGIN, -MARKER_MARGIN, MARKER_MARGIN, MARKER_MARGIN)
        marker = QGraphicsRectItem(rect)
        pen = QPen(QColor(STATUS_COLORS[status]), 4)
        marker.setPen(pen)
        marker.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        marker.setZValue(MARKER_Z)
        marker.setToolTip(f"{step_id}: {status}")
        self.diff_scene.addItem(marker)
        self.markers[step_id] = status
        return True

    def fit(self) -> None:
        rect = self.diff_scene.items_rect()
        if not rect.isEmpty():
            self.fitInView(rect.adjusted(-40, -40, 40, 40), Qt.AspectRatioMode.KeepAspectRatio)

    def center_on_step(self, step_id: str) -> None:
        node = self.diff_scene.node_item(step_id)
        if node is not None:
            rect: QRectF = node.sceneBoundingRect()
            self.centerOn(rect.center())


class DiffDialog(QDialog):
    """The older document on the left, the newer on the right, and a per-step config diff table."""

    def __init__(
        self, old: Workflow, new: Workflow, old_title: str, new_title: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Compare {old_title} with {new_title}")
        self.resize(1200, 760)
        self.diff: WorkflowDiff = diff_workflows(old, new)
        self.old_canvas = DiffCanvas(old, old_title, self)
        self.new_canvas = DiffCanvas(new, new_title, self)
        self.summary_label = QLabel(f"{old_title} → {new_title}: {self.diff.summary()}", self)
        self.summary_label.setWordWrap(True)
        self.legend_label = QLabel(self._legend(), self)
        self.table = QTableWidget(0, len(TABLE_COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)

        canvases = QSplitter(Qt.Orientation.Horizontal, self)
        for canvas in (self.old_canvas, self.new_canvas):
            holder = QWidget(canvases)
            holder_layout = QVBoxLayout(holder)
            holder_layout.setContentsMargins(0, 0, 0, 0)
            holder_layout.addWidget(QLabel(canvas.title, holder))
            holder_layout.addWidget(canvas, 1)
            canvases.addWidget(holder)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        splitter.addWidget(canvases)
        splitter.addWidget(self.table)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.legend_label)
        layout.addWidget(splitter, 1)
        layout.addWidget(buttons)

        self._mark_canvases()
        self._fill_table()
        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)

    def _legend(self) -> str:
        parts = [f'<span style="color:{color}">■</span> {status}' for status, color in STATUS_COLORS.items()]
        return "&nbsp;&nbsp;".join(parts)

    def _mark_canvases(self) -> None:
        for step_id, item in self.diff.steps.items():
            if item.status == "added":
                self.new_canvas.mark(step_id, "added")
            elif item.status == "removed":
                self.old_canvas.mark(step_id, "removed")
            else:
                self.old_canvas.mark(step_id, item.status)
                self.new_canvas.mark(step_id, item.status)

    def _fill_table(self) -> None:
        rows: list[tuple[str, str, str, str, str]] = []
        for step_id, item in self.diff.steps.items():
            label = item.status + (" and moved" if item.status == "changed" and item.moved else "")
            if not item.changes:
                rows.append((step_id, label, "", "", ""))
            for change in item.changes:
                rows.append((step_id, label, change.path, _value_text(change.old), _value_text(change.new)))
        for edge in self.diff.edges_added:
            rows.append(("", "edge added", edge.describe(), "", ""))
        for edge in self.diff.edges_removed:
            rows.append(("", "edge removed", edge.describe(), "", ""))
        for change in self.diff.workflow_changes:
            rows.append(("(workflow)", "changed", change.path, _value_text(change.old), _value_text(change.new)))
        self.table.setRowCount(len(rows))
        for row, values in enumerate(rows):
            for column, text in enumerate(values):
                cell = QTableWidgetItem(text)
                cell.setToolTip(text)
                if column == 1 and values[1].split(" ")[0] in STATUS_COLORS:
                    cell.setForeground(QColor(STATUS_COLORS[values[1].split(" ")[0]]))
                self.table.setItem(row, column, cell)
        self.table.resizeColumnsToContents()

    def table_rows(self) -> list[tuple[str, ...]]:
        """Return the table's text, row by row."""
        rows = []
        for row in range(self.table.rowCount()):
            cells = (self.table.item(row, column) for column in range(len(TABLE_COLUMNS)))
            rows.append(tuple(cell.text() if cell is not None else "" for cell in cells))
        return rows

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.old_canvas.fit()
        self.new_canvas.fit()

    def _on_table_selection_changed(self) -> None:
        items = self.table.selectedItems()
        if not items:
            return
        step_item = self.table.item(items[0].row(), 0)
        step_id = step_item.text() if step_item is not None else ""
        if step_id and step_id != "(workflow)":
            self.old_canvas.center_on_step(step_id)
            self.new_canvas.center_on_step(step_id)
