"""Window integration of shared graphs: Export and Import actions, the mapping dialog and error display."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu

from studio.model.shared_graph import (
    SharedGraph,
    SharedGraphError,
    load_shared_graph,
    match_requirements,
    write_text_atomically,
)
from studio.model.workflow import Workflow
from studio.panels.import_export.mapping_dialog import ImportMappingDialog
from studio.store import StoreError
from studio.store import workflow_library as library

logger = logging.getLogger(__name__)

FILE_FILTER = "Shared graphs (*.graph.json *.json);;All files (*)"


class ImportExport(QObject):
    """Export of the open workflow as a shared graph, and import of one as a new draft.

    ``window`` needs ``document``, ``store``, ``show_document(workflow, path)`` and
    ``show_error(title, message)``. When the workflow library is installed (``window.workflow_library``)
    its unsaved-edit handling and list are used.
    """

    sig_exported = Signal(str)
    """Emitted with the file path after an export was written."""
    sig_imported = Signal(str)
    """Emitted with the new workflow's id after an import was saved and opened."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.store = window.store
        self.document = window.document
        self.mapping_dialog: ImportMappingDialog | None = None
        self.last_problems: list[tuple[str, str]] = []
        """The problems of the last file that could not be imported or exported."""
        self.action_export = QAction("E&xport shared graph…", window)
        self.action_export.triggered.connect(self.ask_export)
        self.action_import = QAction("&Import shared graph…", window)
        self.action_import.triggered.connect(self.ask_import)
        self.menu = self._file_menu()
        self.menu.addSeparator()
        self.menu.addAction(self.action_import)
        self.menu.addAction(self.action_export)

    def _file_menu(self) -> QMenu:
        menu = getattr(self.window, "file_menu", None)
        if isinstance(menu, QMenu):
            return menu
        return self.window.menuBar().addMenu("&File")  # type: ignore[no-any-return]

    # -- export -----------------------------------------------------------------------------

    def ask_export(self) -> None:
        """Ask for a file name (blocking file dialog) and export the open workflow there."""
        name = self.document.workflow.name.replace("/", "-") or "workflow"
        path, _filter = QFileDialog.getSaveFileName(
            self.window, "Export shared graph", f"{name}.graph.json", FILE_FILTER
        )
        if path:
            self.export_to(Path(path))

    def export_to(self, path: Path) -> bool:
        """Write the open workflow as a shared graph to ``path``; show the problems and return False on failure."""
        try:
            graph = library.export_workflow(self.store, self.document.snapshot())
            write_text_atomically(path, graph.to_json())
        except SharedGraphError as error:
            self.last_problems = error.problems
            self.window.show_error("Cannot export the workflow", str(error))
            return False
        except OSError as error:
            self.window.show_error("Cannot export the workflow", f"writing {path} failed: {error.strerror}")
            return False
        self.window.statusBar().showMessage(f"Exported {path}", 5000)
        logger.info("exported workflow %s to %s", self.document.workflow_id, path)
        self.sig_exported.emit(str(path))
        return True

    # -- import -----------------------------------------------------------------------------

    def ask_import(self) -> None:
        """Ask for a file (blocking file dialog) and start importing it."""
        path, _filter = QFileDialog.getOpenFileName(self.window, "Import shared graph", "", FILE_FILTER)
        if path:
            self.import_file(Path(path))

    def import_file(self, path: Path) -> ImportMappingDialog | None:
        """Validate ``path`` and open the mapping dialog (non-blocking); on errors show them and return None.

        The open document is left alone until the dialog is accepted.
        """
        try:
            graph = load_shared_graph(path)
        except SharedGraphError as error:
            self.last_problems = error.problems
            logger.warning("cannot import %s: %d problems", path, len(error.problems))
            self.window.show_error("Cannot import the shared graph", str(error))
            return None
        self.last_problems = []
        instances = library.local_instances(self.store)
        connections = library.local_connections(self.store)
        proposed = match_requirements(graph, instances, connections)
        dialog = ImportMappingDialog(graph, instances, connections, proposed, path.name, self.window)
        dialog.accepted.connect(lambda: self.finish_import(graph, dialog))
        dialog.finished.connect(dialog.deleteLater)
        self.mapping_dialog = dialog
        dialog.open()
        return dialog

    def finish_import(self, graph: SharedGraph, dialog: ImportMappingDialog) -> Workflow | None:
        """Create the draft from the dialog's choices and open it; return it, or None on error."""
        workflow_library = getattr(self.window, "workflow_library", None)
        project_id = workflow_library.panel.project_id if workflow_library is not None else None
        try:
            workflow = library.import_graph(self.store, graph, dialog.mapping(), project_id=project_id)
        except (SharedGraphError, StoreError) as error:
            self.window.show_error("Cannot import the shared graph", str(error))
            return None
        if workflow_library is not None:
            workflow_library.panel.refresh()
            if workflow_library.open_workflow(workflow.id):
                self.sig_imported.emit(workflow.id)
            return workflow
        editor = getattr(self.window, "editor", None)
        if editor is not None and not editor.maybe_save_changes():
            # The draft is saved in the library, so declining to replace the document loses nothing.
            return workflow
        self.window.show_document(workflow, None)
        self.sig_imported.emit(workflow.id)
        return workflow


def install_import_export(window: Any) -> ImportExport:
    """Add Import and Export shared graph actions to the window's File menu; see :class:`ImportExport`."""
    installed = ImportExport(window)
    window.import_export = installed
    return installed
