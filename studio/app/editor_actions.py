"""File and Edit actions of the editor window: New, Save, Save As, Revert, Undo, Redo, History and recovery."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMessageBox, QUndoView

from studio.app.recovery import RecoveryFile, RecoveryWriter, find_recovery_files
from studio.model.document import DocumentError, load_workflow
from studio.model.edits import EditError
from studio.model.workflow import Workflow

if TYPE_CHECKING:
    from studio.app.main_window import MainWindow

logger = logging.getLogger(__name__)

FILE_FILTER = "Workflow files (*.workflow.json *.json);;All files (*)"
SAVE_SUFFIX = ".workflow.json"


class EditorActions(QObject):
    """The window's document actions, the History dock, unsaved-change prompts and crash recovery.

    Prompts whose result the caller needs before it continues (closing the window, opening another
    file) are modal. The recovery offer at start-up is not modal, so the window stays usable meanwhile.
    """

    def __init__(self, window: MainWindow, recovery_dir: Path) -> None:
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.recovery = RecoveryWriter(self.document, recovery_dir, self)
        self.recovery_box: QMessageBox | None = None
        self._pending_recovery: list[RecoveryFile] = []
        self._build_actions()
        self._build_history_dock()
        self.document.sig_dirty_changed.connect(self._on_document_dirty_changed)

    # -- construction ----------------------------------------------------------------------

    def _build_actions(self) -> None:
        window = self.window
        self.action_new = QAction("&New", window, shortcut=QKeySequence(QKeySequence.StandardKey.New))
        self.action_new.triggered.connect(self.new_document)
        self.action_save = QAction("&Save", window, shortcut=QKeySequence(QKeySequence.StandardKey.Save))
        self.action_save.triggered.connect(self.save)
        self.action_save_as = QAction("Save &As…", window, shortcut=QKeySequence(QKeySequence.StandardKey.SaveAs))
        self.action_save_as.triggered.connect(lambda: self.save_as())
        self.action_revert = QAction("Re&vert", window)
        self.action_revert.setToolTip("Discard the unsaved changes and reload the workflow file")
        self.action_revert.triggered.connect(self.revert)
        stack = self.document.undo_stack
        self.action_undo = stack.createUndoAction(window, "&Undo")
        self.action_undo.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
        self.action_redo = stack.createRedoAction(window, "&Redo")
        self.action_redo.setShortcut(QKeySequence(QKeySequence.StandardKey.Redo))

    def _build_history_dock(self) -> None:
        self.history_view = QUndoView(self.document.undo_stack)
        self.history_view.setEmptyLabel("<opened>")
        self.history_dock = QDockWidget("History", self.window)
        self.history_dock.setObjectName("history-dock")
        self.history_dock.setWidget(self.history_view)
        self.window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.history_dock)

    def fill_file_menu(self, before: QAction) -> None:
        """Add New before ``before`` (the Open action) and Save, Save As and Revert after the Open entries."""
        menu = self.window.file_menu
        menu.insertAction(before, self.action_new)
        anchor = next((action for action in menu.actions() if action.isSeparator()), None)
        for action in (self.action_save, self.action_save_as, self.action_revert):
            if anchor is None:
                menu.addAction(action)
            else:
                menu.insertAction(anchor, action)

    def fill_edit_menu(self) -> None:
        menu = self.window.edit_menu
        menu.addAction(self.action_undo)
        menu.addAction(self.action_redo)

    # -- file commands ---------------------------------------------------------------------

    def new_document(self) -> bool:
        """Replace the document with an empty workflow after asking about unsaved changes."""
        if not self.maybe_save_changes():
            return False
        self.window.set_workflow(Workflow())
        return True

    def save(self) -> bool:
        """Save to the document's file, asking for a file name when it has none. Return True on success."""
        if self.document.path is None:
            return self.save_as()
        return self._save_to(self.document.path)

    def save_as(self, path: Path | str | None = None) -> bool:
        """Save to ``path``, asking for one when None. Return True on success."""
        if path is None:
            start = str(self.document.path or Path.home() / (self.document.workflow.name + SAVE_SUFFIX))
            chosen, _filter = QFileDialog.getSaveFileName(self.window, "Save workflow as", start, FILE_FILTER)
            if not chosen:
                return False
            path = chosen
        return self._save_to(Path(path))

    def _save_to(self, path: Path) -> bool:
        try:
            self.document.save(path)
        except (OSError, EditError) as error:
            logger.warning("cannot save workflow %s to %s: %s", self.document.workflow_id, path, error)
            self.window.show_error("Cannot save the workflow", f"{path}: {error}")
            return False
        self.recovery.discard()
        self.window.statusBar().showMessage(f"Saved {path}", 5000)
        self.window.update_title()
        return True

    def revert(self) -> bool:
        """Discard the unsaved changes and reload the file (a new workflow becomes empty again)."""
        path = self.document.path
        if path is None:
            workflow = Workflow(id=self.document.workflow_id)
        else:
            try:
                workflow = load_workflow(path)
            except DocumentError as error:
                self.window.show_error("Cannot revert the workflow", str(error))
                return False
        self.recovery.discard()
        self.window.set_workflow(workflow, path)
        self.window.statusBar().showMessage("Reverted to the saved workflow", 5000)
        return True

    def maybe_save_changes(self) -> bool:
        """Ask Save / Discard / Cancel when the document has unsaved changes; return False on Cancel.

        Save that fails or is cancelled in the file dialog counts as Cancel. Discard removes the
        recovery file.
        """
        if not self.window.has_workflow or not self.document.is_dirty():
            return True
        buttons = (QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                   | QMessageBox.StandardButton.Cancel)
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Unsaved changes",
            f"The workflow '{self.document.workflow.name}' has unsaved changes. Save them?",
            buttons,
            self.window,
        )
        box.setObjectName("unsaved-changes-box")
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = box.exec()
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        if answer == QMessageBox.StandardButton.Discard:
            self.recovery.discard()
            self.document.mark_clean()
            return True
        return False

    # -- crash recovery --------------------------------------------------------------------

    def offer_recovery(self) -> int:
        """Offer to restore each recovery file left by a process that ended; return how many are offered.

        Each offer is a non-blocking message box (:attr:`recovery_box`): Restore opens the draft as a
        document with unsaved changes, Discard deletes the file, and Ignore keeps it for the next start.
        """
        self._pending_recovery = find_recovery_files(self.recovery.directory)
        count = len(self._pending_recovery)
        if count:
            logger.info("found %d recovery file(s) in %s", count, self.recovery.directory)
        self._offer_next()
        return count

    def _offer_next(self) -> None:
        self.recovery_box = None
        if not self._pending_recovery:
            return
        recovery = self._pending_recovery.pop(0)
        source = str(recovery.source_path) if recovery.source_path else "a new, never saved workflow"
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Restore unsaved changes?",
            f"Workflow Studio ended without saving changes to '{recovery.workflow.name}' ({source}). "
            "Restore them?",
            QMessageBox.StandardButton.Ignore,
            self.window,
        )
        box.setObjectName("recovery-box")
        restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton(QMessageBox.StandardButton.Discard)
        box.setDefaultButton(restore)
        box.setWindowModality(Qt.WindowModality.WindowModal)

        def on_finished(_result: int) -> None:
            clicked = box.clickedButton()
            if clicked is restore:
                self.restore(recovery)
            elif clicked is discard:
                with contextlib.suppress(FileNotFoundError):
                    recovery.file.unlink()
                logger.info("discarded recovery file %s", recovery.file)
            box.deleteLater()
            self._offer_next()

        box.finished.connect(on_finished)
        box.open()
        self.recovery_box = box

    def restore(self, recovery: RecoveryFile) -> None:
        """Open the draft of ``recovery`` as a document with unsaved changes (its file stays until saved)."""
        self.window.show_document(recovery.workflow, recovery.source_path, dirty=True)
        self.window.statusBar().showMessage(f"Restored unsaved changes to {recovery.workflow.name}", 10000)
        logger.info("restored workflow %s from recovery file %s", recovery.workflow.id, recovery.file)

    def _on_document_dirty_changed(self, _dirty: bool) -> None:
        self.window.update_title()


def install_editor_actions(window: MainWindow, recovery_dir: Path) -> EditorActions:
    """Create the editor's document actions, History dock and crash recovery for ``window``."""
    return EditorActions(window, recovery_dir)
