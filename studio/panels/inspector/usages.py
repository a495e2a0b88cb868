"""The Usages panel: where a step's result is read, one row per step and field."""

from __future__ import annotations

import logging

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from studio.model.edits import Usage, find_usages
from studio.model.workflow import Workflow

logger = logging.getLogger(__name__)


class UsagesPanel(QWidget):
    """Lists the usages of one step. Clicking a row emits a request to show that step and field."""

    sig_usage_activated = Signal(str, str)
    """Emitted with the reading step's id and the field path of a clicked row."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.step_id: str | None = None
        self.usages: list[Usage] = []
        self.header_label = QLabel("Use Find usages on a step to list where its result is read", self)
        self.header_label.setWordWrap(True)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Step", "Field"])
        self.tree.setRootIsDecorated(False)
        self.tree.itemClicked.connect(self._on_tree_item_clicked)
        self.tree.itemActivated.connect(self._on_tree_item_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.header_label)
        layout.addWidget(self.tree, 1)

    def show_usages(self, workflow: Workflow, step_id: str) -> list[Usage]:
        """List every field that reads ``step_id`` and return the usages."""
        self.step_id = step_id
        self.usages = find_usages(workflow, step_id)
        self.tree.clear()
        for usage in self.usages:
            reader = workflow.step(usage.step_id)
            item = QTreeWidgetItem([f"{reader.title} ({usage.step_id})", usage.field_path])
            self.tree.addTopLevelItem(item)
        count = len(self.usages)
        if count:
            self.header_label.setText(f"{count} usage(s) of step '{step_id}'")
        else:
            self.header_label.setText(f"No template reads step '{step_id}'")
        self.tree.resizeColumnToContents(0)
        logger.debug("found %d usages of step %s", count, step_id)
        return list(self.usages)

    def activate_row(self, row: int) -> None:
        """Act as if the user clicked ``row``."""
        item = self.tree.topLevelItem(row)
        if item is not None:
            self._on_tree_item_clicked(item, 0)

    def _on_tree_item_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        row = self.tree.indexOfTopLevelItem(item)
        if 0 <= row < len(self.usages):
            usage = self.usages[row]
            self.sig_usage_activated.emit(usage.step_id, usage.field_path)
