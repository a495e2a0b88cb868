"""Window integration of the workflow library: the Workflows and Versions docks and the Workflow menu."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QInputDialog, QLineEdit, QMenu

from studio.model.workflow import Workflow
from studio.panels.workflows.diff_dialog import DiffDialog
from studio.panels.workflows.history_dialog import DraftHistoryDialog
from studio.panels.workflows.library_panel import WorkflowsPanel
from studio.panels.workflows.publish_dialog import PublishDialog
from studio.panels.workflows.versions_panel import DRAFT, VersionsPanel
from studio.store import StoreError
from studio.store import workflow_library as library

logger = logging.getLogger(__name__)


class WorkflowLibrary(QObject):
    """The library docks and actions of one window; every store change goes through the library module.

    ``window`` needs ``document`` (an EditorDocument), ``store``, ``show_document(workflow, path)``
    and ``show_error(title, message)``; ``editor.maybe_save_changes()`` is used when present.
    """

    sig_workflow_opened = Signal(str)
    """Emitted with the workflow id after a library workflow (draft or version) was loaded."""
    sig_published = Signal(str, int)
    """Emitted with the workflow id and the version number after a publish."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.store = window.store
        self.document = window.document
        self.shown_version: int | None = None
        """The version number open read-only, or None when the editable document is shown."""
        self._loading_version: int | None = None
        self.publish_dialog: PublishDialog | None = None
        self.diff_dialog: DiffDialog | None = None
        self.rename_dialog: QInputDialog | None = None
        self.history_dialog: DraftHistoryDialog | None = None

        self.panel = WorkflowsPanel(self.store, window)
        self.dock = self._add_dock("Workflows", "workflows-dock", self.panel)
        self.versions = VersionsPanel(self.store, window)
        self.versions_dock = self._add_dock("Versions", "versions-dock", self.versions)
        self._build_actions()
        self._connect()
        self._on_document_reset()

    # -- construction ----------------------------------------------------------------------

    def _add_dock(self, title: str, name: str, widget: Any) -> QDockWidget:
        dock = QDockWidget(title, self.window)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        return dock

    def _build_actions(self) -> None:
        window = self.window
        self.action_save_draft = QAction("Save &draft", window, shortcut=QKeySequence("Ctrl+Alt+S"))
        self.action_save_draft.setToolTip("Save the open workflow as its draft in the library (keeps every save)")
        self.action_save_draft.triggered.connect(self.save_draft)
        self.action_publish = QAction("&Publish…", window, shortcut=QKeySequence("Ctrl+Alt+P"))
        self.action_publish.triggered.connect(self.ask_publish)
        self.action_new_workflow = QAction("&New workflow in library…", window)
        self.action_new_workflow.triggered.connect(self.ask_new_workflow)
        self.menu = QMenu("&Workflow", window)
        self.menu.setObjectName("workflow-menu")
        for action in (self.action_new_workflow, self.action_save_draft, self.action_publish):
            self.menu.addAction(action)
        self.menu.addSeparator()
        self.menu.addAction(self.dock.toggleViewAction())
        self.menu.addAction(self.versions_dock.toggleViewAction())
        window.menuBar().addMenu(self.menu)

    def _connect(self) -> None:
        self.panel.sig_open_requested.connect(self.open_workflow)
        self.panel.sig_new_requested.connect(self.ask_new_workflow)
        self.panel.sig_rename_requested.connect(self.ask_rename)
        self.panel.sig_error_raised.connect(self._on_panel_error_raised)
        self.versions.sig_open_requested.connect(self.open_version)
        self.versions.sig_restore_requested.connect(self.restore_version)
        self.versions.sig_compare_requested.connect(self.compare)
        self.versions.sig_history_requested.connect(self.show_draft_history)
        self.document.sig_reset.connect(self._on_document_reset)
        self.document.sig_dirty_changed.connect(self._update_actions)
        controller = getattr(self.window, "controller", None)
        if controller is not None and hasattr(controller, "sig_run_started"):
            # A run publishes the document as a version first, so the list gains a row.
            controller.sig_run_started.connect(self._on_run_started)

    # -- document state ---------------------------------------------------------------------

    def _on_document_reset(self) -> None:
        # Every load resets the document. A load from open_version() makes it read-only, and the next
        # load clears the flag again; a read-only state that other code set is left alone.
        showed_version = self.shown_version is not None
        self.shown_version = self._loading_version
        self._loading_version = None
        if self.shown_version is not None:
            self.document.read_only = True
        elif showed_version:
            self.document.read_only = False
        workflow = self.document.workflow
        if getattr(self.window, "has_workflow", True):
            self.versions.show_workflow(workflow.id, workflow.name)
            self.panel.select(workflow.id)
        self._update_actions()

    def _update_actions(self, *_args: object) -> None:
        editable = getattr(self.window, "has_workflow", True) and not self.document.read_only
        self.action_save_draft.setEnabled(editable)
        self.action_publish.setEnabled(editable)

    def _load(self, workflow: Workflow, *, version: int | None = None) -> None:
        self._loading_version = version
        self.window.show_document(workflow, None)
        self.sig_workflow_opened.emit(workflow.id)

    def keep_current(self) -> bool:
        """Keep unsaved edits before another workflow replaces the document; return False to cancel.

        A dirty workflow without a file is saved as its library draft. A dirty workflow with a file
        goes through the editor's Save / Discard / Cancel question when the window has one.
        """
        document = self.document
        if not getattr(self.window, "has_workflow", True) or not document.is_dirty() or document.read_only:
            return True
        if document.path is None:
            return self.save_draft()
        editor = getattr(self.window, "editor", None)
        return bool(editor.maybe_save_changes()) if editor is not None else True

    # -- workflows --------------------------------------------------------------------------

    def open_workflow(self, workflow_id: str) -> bool:
        """Load the draft of ``workflow_id`` (or its latest version when it has no draft) as the document."""
        if not self.keep_current():
            return False
        try:
            workflow = self.store.get_draft(workflow_id)
            if workflow is None:
                versions = self.store.list_versions(workflow_id)
                if not versions:
                    raise StoreError(f"workflow '{workflow_id}' has no draft and no version")
                workflow = versions[-1].workflow
        except (StoreError, ValueError) as error:
            self.window.show_error("Cannot open the workflow", str(error))
            return False
        self._load(workflow)
        return True

    def new_workflow(self, name: str) -> Workflow | None:
        """Create an empty workflow in the listed project and open it; return None on error."""
        if not self.keep_current():
            return None
        try:
            workflow = library.create_workflow(self.store, name, self.panel.project_id)
        except StoreError as error:
            self.window.show_error("Cannot create the workflow", str(error))
            return None
        self.panel.refresh()
        self._load(workflow)
        return workflow

    def ask_new_workflow(self) -> QInputDialog:
        """Ask for the name of a new workflow (non-blocking) and create it on OK."""
        dialog = self._text_dialog("New workflow", "Name of the new workflow:", "Untitled workflow")
        dialog.textValueSelected.connect(self.new_workflow)
        dialog.open()
        return dialog

    def rename(self, workflow_id: str, name: str) -> bool:
        """Rename a workflow; when it is the open one, the document's name follows."""
        is_open = self.document.workflow_id == workflow_id and not self.document.read_only
        try:
            if is_open:
                self.keep_current()
            library.rename_workflow(self.store, workflow_id, name)
        except StoreError as error:
            self.window.show_error("Cannot rename the workflow", str(error))
            return False
        if is_open:
            draft = self.store.get_draft(workflow_id)
            if draft is not None:
                self._load(draft)
        self.panel.refresh()
        return True

    def ask_rename(self, workflow_id: str) -> QInputDialog:
        """Ask for a new name of ``workflow_id`` (non-blocking) and rename it on OK."""
        current = self.store.workflow_names([workflow_id]).get(workflow_id, "")
        dialog = self._text_dialog("Rename workflow", "New name:", current)
        dialog.textValueSelected.connect(lambda name: self.rename(workflow_id, name))
        dialog.open()
        return dialog

    def _text_dialog(self, title: str, label: str, text: str) -> QInputDialog:
        dialog = QInputDialog(self.window)
        dialog.setWindowTitle(title)
        dialog.setLabelText(label)
        dialog.setTextEchoMode(QLineEdit.EchoMode.Normal)
        dialog.setTextValue(text)
        dialog.finished.connect(dialog.deleteLater)
        self.rename_dialog = dialog
        return dialog

    def save_draft(self) -> bool:
        """Save the open workflow as its library draft; a document without a file counts as saved."""
        if self.document.read_only:
            return False
        try:
            saved = library.save_draft(self.store, self.document.snapshot(), project_id=self.panel.project_id)
        except StoreError as error:
            self.window.show_error("Cannot save the draft", str(error))
            return False
        if self.document.path is None:
            self.document.mark_clean()
        self.window.statusBar().showMessage(f"Saved draft revision {saved.revision}", 5000)
        self.panel.refresh()
        self.versions.refresh()
        return True

    # -- versions ---------------------------------------------------------------------------

    def ask_publish(self) -> PublishDialog | None:
        """Open the Publish dialog for the document (non-blocking); None when the document is read-only."""
        if self.document.read_only:
            return None
        dialog = PublishDialog(self.store, self.document.snapshot(), self.window)
        dialog.accepted.connect(lambda: self._on_publish_dialog_accepted(dialog))
        dialog.finished.connect(dialog.deleteLater)
        self.publish_dialog = dialog
        dialog.open()
        return dialog

    def _on_publish_dialog_accepted(self, dialog: PublishDialog) -> None:
        version = dialog.version
        if version is None:
            return
        if self.document.path is None and self.document.workflow == dialog.workflow:
            self.document.mark_clean()
        self.window.statusBar().showMessage(f"Published version {version.number}", 5000)
        self.panel.refresh()
        self.versions.refresh()
        self.sig_published.emit(version.workflow_id, version.number)

    def open_version(self, number: int) -> bool:
        """Show published version ``number`` of the listed workflow, read-only."""
        workflow_id = self.versions.workflow_id
        if workflow_id is None or not self.keep_current():
            return False
        try:
            version = library.get_version_by_number(self.store, workflow_id, number)
            workflow = version.workflow
        except (StoreError, ValueError) as error:
            self.window.show_error("Cannot open the version", str(error))
            return False
        self._load(workflow, version=number)
        self.window.statusBar().showMessage(f"Showing version {number} read-only", 5000)
        return True

    def restore_version(self, number: int) -> bool:
        """Make version ``number`` the draft and open it; the replaced draft stays in the draft history."""
        workflow_id = self.versions.workflow_id
        if workflow_id is None or not self.keep_current():
            return False
        try:
            workflow = library.restore_version(self.store, workflow_id, number)
        except (StoreError, ValueError) as error:
            self.window.show_error("Cannot restore the version", str(error))
            return False
        self._load(workflow)
        self.panel.refresh()
        self.window.statusBar().showMessage(f"Restored version {number} as the draft", 5000)
        return True

    def compare(self, older: int, newer: int) -> DiffDialog | None:
        """Open the visual diff of two rows of the Versions list (0 is the draft)."""
        workflow_id = self.versions.workflow_id
        if workflow_id is None:
            return None
        try:
            old, old_title = self._row_workflow(workflow_id, older)
            new, new_title = self._row_workflow(workflow_id, newer)
        except (StoreError, ValueError) as error:
            self.window.show_error("Cannot compare", str(error))
            return None
        dialog = DiffDialog(old, new, old_title, new_title, self.window)
        dialog.finished.connect(dialog.deleteLater)
        self.diff_dialog = dialog
        dialog.open()
        return dialog

    def show_draft_history(self) -> DraftHistoryDialog | None:
        """Open the draft history of the listed workflow (non-blocking); Restore loads the chosen revision."""
        workflow_id = self.versions.workflow_id
        if workflow_id is None:
            return None
        name = self.store.workflow_names([workflow_id]).get(workflow_id, "")
        dialog = DraftHistoryDialog(self.store, workflow_id, name, self.window)
        dialog.accepted.connect(lambda: self.restore_draft_revision(workflow_id, dialog.chosen_revision))
        dialog.finished.connect(dialog.deleteLater)
        self.history_dialog = dialog
        dialog.open()
        return dialog

    def restore_draft_revision(self, workflow_id: str, revision: int | None) -> bool:
        """Make draft ``revision`` of ``workflow_id`` the draft and open it; current edits are kept first."""
        if revision is None or not self.keep_current():
            return False
        try:
            workflow = library.restore_draft_revision(self.store, workflow_id, revision)
        except (StoreError, ValueError) as error:
            self.window.show_error("Cannot restore the draft revision", str(error))
            return False
        self._load(workflow)
        self.panel.refresh()
        self.window.statusBar().showMessage(f"Restored draft revision {revision}", 5000)
        return True

    def _row_workflow(self, workflow_id: str, key: int) -> tuple[Workflow, str]:
        if key == DRAFT:
            return library.get_draft(self.store, workflow_id), "the draft"
        return library.get_version_by_number(self.store, workflow_id, key).workflow, f"version {key}"

    def _on_run_started(self, _run_id: str) -> None:
        self.versions.refresh()
        self.panel.refresh()

    def _on_panel_error_raised(self, message: str) -> None:
        self.window.show_error("Workflow library", message)


def install_workflow_library(window: Any) -> WorkflowLibrary:
    """Add the Workflows and Versions docks and the Workflow menu to ``window``; see :class:`WorkflowLibrary`."""
    installed = WorkflowLibrary(window)
    window.workflow_library = installed
    logger.debug("workflow library installed")
    return installed
