"""The Workflows dock widget: the workflows of one project with open, new, rename and archive."""

from __future__ import annotations

import datetime
import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.store import Store, StoreError
from studio.store import workflow_library as library

logger = logging.getLogger(__name__)

COLUMNS = ("Name", "Updated", "Version", "Draft")
DRAFT_STATE_TEXT = {
    "new": "new, not published",
    "published": "published",
    "modified": "unpublished changes",
    "no draft": "no draft",
}
ID_ROLE = Qt.ItemDataRole.UserRole + 1


def format_time(at: float | None) -> str:
    """Return ``at`` (Unix seconds) as local ``YYYY-MM-DD HH:MM``, or an empty string."""
    if at is None:
        return ""
    return datetime.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M")


class WorkflowsPanel(QWidget):
    """The workflow list of one project; store changes go through :mod:`studio.store.workflow_library`."""

    sig_open_requested = Signal(str)
    """Emitted with a workflow id when the user opens a workflow (double click or Open)."""
    sig_new_requested = Signal()
    """Emitted when the user asks for a new workflow. No arguments."""
    sig_rename_requested = Signal(str)
    """Emitted with a workflow id when the user asks to rename it."""
    sig_error_raised = Signal(str)
    """Emitted with a message when a store operation of the panel failed."""

    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.project_combo = QComboBox(self)
        self.show_archived = QCheckBox("Show archived", self)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.open_button = QPushButton("Open", self)
        self.new_button = QPushButton("New", self)
        self.rename_button = QPushButton("Rename…", self)
        self.archive_button = QPushButton("Archive", self)
        self.empty_label = QLabel("No workflows in this project yet. Create one with New.", self)
        self.empty_label.setWordWrap(True)

        top = QHBoxLayout()
        top.addWidget(QLabel("Project:", self))
        top.addWidget(self.project_combo, 1)
        top.addWidget(self.show_archived)
        # Two rows of two buttons keep the dock narrow enough to leave the canvas most of the window.
        buttons = QGridLayout()
        for index, button in enumerate((self.open_button, self.new_button, self.rename_button, self.archive_button)):
            buttons.addWidget(button, index // 2, index % 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.empty_label)
        layout.addLayout(buttons)

        self.project_combo.currentIndexChanged.connect(self._on_project_combo_changed)
        self.show_archived.toggled.connect(self.refresh)
        self.tree.itemDoubleClicked.connect(self._on_tree_double_clicked)
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.new_button.clicked.connect(self.sig_new_requested)
        self.rename_button.clicked.connect(self._on_rename_clicked)
        self.archive_button.clicked.connect(self._on_archive_clicked)
        self.refresh_projects()

    @property
    def project_id(self) -> str:
        """The id of the project whose workflows are listed."""
        data = self.project_combo.currentData()
        return str(data) if data else self.store.project_id

    def refresh_projects(self) -> None:
        """Reload the project list, keeping the chosen project when it still exists."""
        current = self.project_combo.currentData() or self.store.project_id
        self.project_combo.blockSignals(True)
        self.project_combo.clear()
        for project in library.list_projects(self.store):
            self.project_combo.addItem(project.name, project.id)
        index = self.project_combo.findData(current)
        self.project_combo.setCurrentIndex(max(index, 0))
        self.project_combo.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        """Reload the workflows of the chosen project from the store, keeping the selection."""
        selected = self.selected_id()
        self.tree.clear()
        try:
            summaries = library.list_workflows(
                self.store, self.project_id, include_archived=self.show_archived.isChecked()
            )
        except StoreError as error:
            logger.warning("listing workflows failed: %s", error)
            self.sig_error_raised.emit(str(error))
            return
        for summary in summaries:
            version = "" if summary.latest_version is None else f"v{summary.latest_version}"
            state = DRAFT_STATE_TEXT[summary.draft_state] + (" (archived)" if summary.archived else "")
            item = QTreeWidgetItem([summary.name, format_time(summary.updated_at), version, state])
            item.setData(0, ID_ROLE, summary.id)
            item.setToolTip(0, summary.id)
            self.tree.addTopLevelItem(item)
            if summary.id == selected:
                item.setSelected(True)
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)
        self.empty_label.setVisible(not summaries)
        self._update_buttons()

    def item_for(self, workflow_id: str) -> QTreeWidgetItem | None:
        """Return the row of ``workflow_id``, or None when it is not listed."""
        for index in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(index)
            if item is not None and item.data(0, ID_ROLE) == workflow_id:
                return item
        return None

    def select(self, workflow_id: str) -> bool:
        """Select the row of ``workflow_id``; return False when it is not listed."""
        item = self.item_for(workflow_id)
        if item is None:
            return False
        self.tree.setCurrentItem(item)
        return True

    def selected_id(self) -> str | None:
        items = self.tree.selectedItems()
        return str(items[0].data(0, ID_ROLE)) if items else None

    def archive_selected(self) -> None:
        """Archive the selected workflow, or bring it back when it is archived already."""
        workflow_id = self.selected_id()
        if workflow_id is None:
            return
        item = self.item_for(workflow_id)
        archived = item is not None and item.text(3).endswith("(archived)")
        try:
            library.set_archived(self.store, workflow_id, not archived)
        except StoreError as error:
            self.sig_error_raised.emit(str(error))
            return
        self.refresh()

    def _update_buttons(self) -> None:
        selected = self.selected_id()
        for button in (self.open_button, self.rename_button, self.archive_button):
            button.setEnabled(selected is not None)
        item = self.item_for(selected) if selected else None
        archived = item is not None and item.text(3).endswith("(archived)")
        self.archive_button.setText("Unarchive" if archived else "Archive")

    def _on_project_combo_changed(self, _index: int) -> None:
        self.refresh()

    def _on_tree_double_clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        self.sig_open_requested.emit(str(item.data(0, ID_ROLE)))

    def _on_open_clicked(self) -> None:
        workflow_id = self.selected_id()
        if workflow_id is not None:
            self.sig_open_requested.emit(workflow_id)

    def _on_rename_clicked(self) -> None:
        workflow_id = self.selected_id()
        if workflow_id is not None:
            self.sig_rename_requested.emit(workflow_id)

    def _on_archive_clicked(self) -> None:
        self.archive_selected()
