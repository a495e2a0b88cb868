"""The draft history dialog: every saved draft content of a workflow, with restore."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.panels.workflows.library_panel import format_time
from studio.store import Store
from studio.store import workflow_library as library

logger = logging.getLogger(__name__)

COLUMNS = ("Revision", "Saved", "Made by", "Steps")
REVISION_ROLE = Qt.ItemDataRole.UserRole + 1
REASON_TEXT = {
    "save": "save",
    "create": "new workflow",
    "rename": "rename",
    "import": "import",
    "restore": "restored version",
    "restore-draft": "restored revision",
    "kept": "save without history",
}


class DraftHistoryDialog(QDialog):
    """The draft revisions of one workflow, newest first; Restore makes the selected one the draft."""

    def __init__(self, store: Store, workflow_id: str, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Draft history of “{name}”")
        self.resize(560, 420)
        self.workflow_id = workflow_id
        self.chosen_revision: int | None = None
        """The revision to restore, set when the dialog is accepted."""
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        for revision in library.list_draft_revisions(store, workflow_id):
            steps = revision.document.get("steps")
            version = f" {revision.source_version}" if revision.source_version is not None else ""
            item = QTreeWidgetItem(
                [
                    str(revision.revision),
                    format_time(revision.saved_at),
                    REASON_TEXT.get(revision.reason, revision.reason) + version,
                    str(len(steps)) if isinstance(steps, list) else "",
                ]
            )
            item.setData(0, REVISION_ROLE, revision.revision)
            self.tree.addTopLevelItem(item)
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.restore_button = QPushButton("Restore as draft", self)
        buttons.addButton(self.restore_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Every saved content of the draft. Restoring saves it as a new revision.", self))
        layout.addWidget(self.tree, 1)
        layout.addWidget(buttons)

        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self._update_buttons()

    def revisions(self) -> list[int]:
        """Return the listed revision numbers, newest first."""
        items = (self.tree.topLevelItem(index) for index in range(self.tree.topLevelItemCount()))
        return [int(item.data(0, REVISION_ROLE)) for item in items if item is not None]

    def select_revision(self, revision: int) -> None:
        for index in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(index)
            if item is not None and int(item.data(0, REVISION_ROLE)) == revision:
                self.tree.setCurrentItem(item)

    def _selected(self) -> int | None:
        items = self.tree.selectedItems()
        return int(items[0].data(0, REVISION_ROLE)) if items else None

    def _update_buttons(self) -> None:
        self.restore_button.setEnabled(self._selected() is not None)

    def accept(self) -> None:
        self.chosen_revision = self._selected()
        if self.chosen_revision is None:
            return
        super().accept()
