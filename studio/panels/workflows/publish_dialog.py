"""The Publish dialog: a note for the new version, and the validation errors that block publishing."""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from studio.model.validation import Finding, validate_workflow
from studio.model.workflow import Workflow
from studio.store import Store, StoreError, VersionRecord
from studio.store import workflow_library as library

logger = logging.getLogger(__name__)

MAX_SHOWN_PROBLEMS = 8


class PublishDialog(QDialog):
    """Ask for a note and publish ``workflow``; Publish is disabled while validation finds errors."""

    def __init__(self, store: Store, workflow: Workflow, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Publish “{workflow.name}”")
        self.store = store
        self.workflow = workflow
        self.version: VersionRecord | None = None
        """The published version after a successful :meth:`accept`."""
        self.findings: list[Finding] = validate_workflow(workflow)
        self.errors = [finding for finding in self.findings if finding.severity == "error"]
        self.note_edit = QPlainTextEdit(self)
        self.note_edit.setPlaceholderText("What changed in this version")
        self.problems_label = QLabel(self)
        self.problems_label.setWordWrap(True)
        self.problems_label.setStyleSheet("color: #d64545")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.publish_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.publish_button.setText("Publish")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Note for this version:", self))
        layout.addWidget(self.note_edit)
        layout.addWidget(self.problems_label)
        layout.addWidget(self.buttons)
        self._show_errors()

    def _show_errors(self) -> None:
        if not self.errors:
            self.problems_label.hide()
            return
        lines = [f"Publishing is blocked: validation found {len(self.errors)} errors. Fix them first:"]
        for finding in self.errors[:MAX_SHOWN_PROBLEMS]:
            where = f"step '{finding.step_id}'" if finding.step_id else "workflow"
            lines.append(f"• {where}: {finding.message}")
        if len(self.errors) > MAX_SHOWN_PROBLEMS:
            lines.append(f"• and {len(self.errors) - MAX_SHOWN_PROBLEMS} more")
        self.problems_label.setText("\n".join(lines))
        self.problems_label.show()
        self.publish_button.setEnabled(False)

    def accept(self) -> None:
        note = self.note_edit.toPlainText().strip()
        if not note:
            self.problems_label.setText("Enter a note that says what changed in this version.")
            self.problems_label.show()
            return
        try:
            self.version = library.publish(self.store, self.workflow, note)
        except StoreError as error:
            # PublishBlockedError is a StoreError too; the dialog stays open and the draft is saved.
            logger.warning("publishing workflow %s failed: %s", self.workflow.id, error)
            self.problems_label.setText(str(error))
            self.problems_label.show()
            return
        super().accept()
