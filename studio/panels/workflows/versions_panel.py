"""The Versions dock widget: the draft and published versions of the open workflow."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.panels.workflows.library_panel import format_time
from studio.store import Store

logger = logging.getLogger(__name__)

COLUMNS = ("Version", "Published", "Note")
DRAFT = 0
"""Row key of the draft; published versions are keyed by their number (1, 2, ...)."""
NUMBER_ROLE = Qt.ItemDataRole.UserRole + 1


class VersionsPanel(QWidget):
    """The draft row and one row per published version, newest first."""

    sig_open_requested = Signal(int)
    """Emitted with a version number when the user opens it read-only."""
    sig_restore_requested = Signal(int)
    """Emitted with a version number when the user asks to make it the draft."""
    sig_compare_requested = Signal(int, int)
    """Emitted with the older and newer row keys to compare (0 is the draft)."""
    sig_history_requested = Signal()
    """Emitted when the user asks for the draft history of the listed workflow. No arguments."""

    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.workflow_id: str | None = None
        self.title_label = QLabel("No workflow open", self)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.open_button = QPushButton("Open read-only", self)
        self.restore_button = QPushButton("Restore as draft", self)
        self.compare_button = QPushButton("Compare", self)
        self.compare_button.setToolTip("Compare two selected rows, or the selected version with the draft")
        self.history_button = QPushButton("Draft history…", self)
        # Two rows of two buttons keep the dock narrow enough to leave the canvas most of the window.
        buttons = QGridLayout()
        for index, button in enumerate((self.open_button, self.restore_button, self.compare_button, self.history_button)):
            buttons.addWidget(button, index // 2, index % 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title_label)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.tree.itemDoubleClicked.connect(self._on_tree_double_clicked)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.restore_button.clicked.connect(self._on_restore_clicked)
        self.compare_button.clicked.connect(self._on_compare_clicked)
        self.history_button.clicked.connect(self.sig_history_requested)
        self._update_buttons()

    def show_workflow(self, workflow_id: str | None, name: str = "") -> None:
        """List the versions of ``workflow_id`` (None clears the list)."""
        self.workflow_id = workflow_id
        self.title_label.setText(f"Versions of “{name}”" if workflow_id else "No workflow open")
        self.refresh()

    def refresh(self) -> None:
        """Reload the rows from the store."""
        self.tree.clear()
        if self.workflow_id is None:
            self._update_buttons()
            return
        has_draft = self.store.get_draft(self.workflow_id) is not None
        if has_draft:
            self._add_row(DRAFT, "Draft", "", "the workflow as last saved")
        for version in reversed(self.store.list_versions(self.workflow_id)):
            self._add_row(version.number, f"v{version.number}", format_time(version.created_at), version.note)
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)
        self._update_buttons()

    def _add_row(self, key: int, label: str, when: str, note: str) -> None:
        item = QTreeWidgetItem([label, when, note])
        item.setData(0, NUMBER_ROLE, key)
        self.tree.addTopLevelItem(item)

    def keys(self) -> list[int]:
        """Return the row keys in list order (0 for the draft, else version numbers)."""
        items = (self.tree.topLevelItem(index) for index in range(self.tree.topLevelItemCount()))
        return [int(item.data(0, NUMBER_ROLE)) for item in items if item is not None]

    def select_keys(self, keys: list[int]) -> None:
        """Select exactly the rows of ``keys``."""
        self.tree.clearSelection()
        for index in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(index)
            if item is not None and int(item.data(0, NUMBER_ROLE)) in keys:
                item.setSelected(True)

    def selected_keys(self) -> list[int]:
        return sorted(int(item.data(0, NUMBER_ROLE)) for item in self.tree.selectedItems())

    def comparison(self) -> tuple[int, int] | None:
        """Return (older, newer) row keys for Compare, or None when the selection cannot be compared."""
        keys = self.selected_keys()
        if len(keys) == 2:
            older, newer = keys
            # The draft (0) is newer than every version.
            return (newer, older) if older == DRAFT else (older, newer)
        if len(keys) == 1 and keys[0] != DRAFT and DRAFT in self.keys():
            return keys[0], DRAFT
        return None

    def _update_buttons(self) -> None:
        keys = self.selected_keys()
        single_version = len(keys) == 1 and keys[0] != DRAFT
        self.open_button.setEnabled(single_version)
        self.restore_button.setEnabled(single_version)
        self.compare_button.setEnabled(self.comparison() is not None)
        self.history_button.setEnabled(DRAFT in self.keys())

    def _on_tree_double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        key = int(item.data(0, NUMBER_ROLE))
        if key != DRAFT:
            self.sig_open_requested.emit(key)

    def _on_open_clicked(self) -> None:
        keys = self.selected_keys()
        if len(keys) == 1 and keys[0] != DRAFT:
            self.sig_open_requested.emit(keys[0])

    def _on_restore_clicked(self) -> None:
        keys = self.selected_keys()
        if len(keys) == 1 and keys[0] != DRAFT:
            self.sig_restore_requested.emit(keys[0])

    def _on_compare_clicked(self) -> None:
        pair = self.comparison()
        if pair is not None:
            self.sig_compare_requested.emit(*pair)
