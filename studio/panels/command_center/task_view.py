"""The task view: a human task's instructions, the data it is about, its form and the decision buttons."""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from studio.engine.elicitation import ELICITATION_KIND, task_kind
from studio.model.workflow import JsonValue
from studio.panels.command_center.form import TaskForm
from studio.panels.command_center.json_tree import JsonTree
from studio.panels.command_center.model import COMMENT_KEY, InboxRow, form_fields, format_time_left
from studio.store import TaskRecord

logger = logging.getLogger(__name__)

BANNER_STYLES = {
    "info": "background: #e8f0fe; color: #174ea6; padding: 6px; border-radius: 4px;",
    "warning": "background: #fef7e0; color: #7a4f01; padding: 6px; border-radius: 4px;",
    "error": "background: #fce8e6; color: #a50e0e; padding: 6px; border-radius: 4px;",
}


class TaskView(QWidget):
    """Shows one task and lets the user approve or reject it, or accept, decline or cancel an MCP input request.

    The view does not call the engine: it emits :attr:`sig_resolve_requested` and the owner reports
    back with :meth:`set_busy` and :meth:`show_outcome`.
    """

    sig_resolve_requested = Signal(str, str, object)
    """Emitted with the task id, the decision (``approve`` or ``reject``; ``accept``, ``decline`` or
    ``cancel`` for an elicitation task) and the form values (a dict, with the comment under ``comment``
    when one was written)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task: TaskRecord | None = None
        self.form: TaskForm | None = None
        self._row: InboxRow | None = None
        self._settled = False
        self._elicitation = False

        self._stack = QStackedWidget(self)
        self.placeholder = QLabel("Select a task in the inbox to see its details.", self)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setEnabled(False)
        self._stack.addWidget(self.placeholder)
        self._stack.addWidget(self._build_details())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._stack)

    # -- construction ----------------------------------------------------------------------

    def _build_details(self) -> QWidget:
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        page = QWidget(scroll)
        column = QVBoxLayout(page)

        self.title_label = QLabel(page)
        font = self.title_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        self.title_label.setFont(font)
        self.title_label.setWordWrap(True)
        self.title_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.meta_label = QLabel(page)
        self.meta_label.setWordWrap(True)
        self.meta_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner = QLabel(page)
        self.banner.setObjectName("task-banner")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.hide()
        for widget in (self.title_label, self.meta_label, self.banner):
            column.addWidget(widget)

        self.instructions_label = QLabel(page)
        self.instructions_label.setTextFormat(Qt.TextFormat.PlainText)
        self.instructions_label.setWordWrap(True)
        self.instructions_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.instructions_box = self._group("Instructions", self.instructions_label, page)
        column.addWidget(self.instructions_box)

        self.data_tree = JsonTree(page)
        self.data_tree.setMinimumHeight(140)
        self.data_box = self._group("Data", self.data_tree, page)
        column.addWidget(self.data_box)

        self.form_box = QGroupBox("Form", page)
        self._form_layout = QVBoxLayout(self.form_box)
        column.addWidget(self.form_box)

        self.comment_edit = QPlainTextEdit(page)
        self.comment_edit.setPlaceholderText("Optional comment for the run's record")
        self.comment_edit.setTabChangesFocus(True)
        self.comment_edit.setFixedHeight(self.comment_edit.fontMetrics().lineSpacing() * 3 + 12)
        self.comment_box = self._group("Comment", self.comment_edit, page)
        column.addWidget(self.comment_box)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.cancel_button = QPushButton("Cancel request", page)
        self.cancel_button.setToolTip("Dismiss the server's request without an answer")
        self.cancel_button.clicked.connect(lambda: self._request("cancel"))
        self.cancel_button.hide()
        self.reject_button = QPushButton("Reject", page)
        self.reject_button.clicked.connect(lambda: self._request("decline" if self._elicitation else "reject"))
        self.approve_button = QPushButton("Approve", page)
        self.approve_button.setDefault(True)
        self.approve_button.clicked.connect(lambda: self._request("accept" if self._elicitation else "approve"))
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.reject_button)
        buttons.addWidget(self.approve_button)
        column.addLayout(buttons)
        column.addStretch(1)
        scroll.setWidget(page)
        return scroll

    def _group(self, title: str, widget: QWidget, parent: QWidget) -> QGroupBox:
        box = QGroupBox(title, parent)
        QVBoxLayout(box).addWidget(widget)
        return box

    # -- showing a task --------------------------------------------------------------------

    def show_task(self, task: TaskRecord, row: InboxRow | None, subject: dict[str, JsonValue]) -> None:
        """Show ``task`` with its inbox ``row`` (for names and times) and ``subject`` data, ready to resolve."""
        self.task = task
        self._row = row
        self._settled = False
        self._elicitation = task_kind(task.context) == ELICITATION_KIND
        self.approve_button.setText("Accept" if self._elicitation else "Approve")
        self.reject_button.setText("Decline" if self._elicitation else "Reject")
        self.cancel_button.setVisible(self._elicitation)
        self.title_label.setText(task.title or task.step_id)
        self.instructions_label.setText(task.instructions)
        self.instructions_box.setVisible(bool(task.instructions.strip()))
        self.data_tree.set_value(subject)
        self.data_box.setVisible(bool(subject))
        self._replace_form(task)
        self.comment_edit.clear()
        self.comment_edit.setReadOnly(False)
        # An input request's answer goes to the server, which expects its own fields only.
        has_comment_field = any(field.get("name") == COMMENT_KEY for field in task.fields)
        self.comment_box.setVisible(not self._elicitation and not has_comment_field)
        self.banner.hide()
        self.set_busy(False)
        self.tick()
        self._stack.setCurrentIndex(1)

    def _replace_form(self, task: TaskRecord) -> None:
        if self.form is not None:
            self._form_layout.removeWidget(self.form)
            self.form.deleteLater()
        self.form = TaskForm(form_fields(task), self.form_box)
        self._form_layout.addWidget(self.form)
        self.form_box.setVisible(bool(self.form.fields))

    def clear(self) -> None:
        """Show the placeholder instead of a task."""
        self.task = None
        self._row = None
        self._stack.setCurrentIndex(0)

    def tick(self, now: float | None = None) -> None:
        """Refresh the line with the workflow, run, step, assignee and time left."""
        if self.task is None:
            return
        now = time.time() if now is None else now
        task = self.task
        workflow = self._row.workflow_name if self._row is not None else task.workflow_id
        parts = [
            f"Workflow: {workflow}",
            f"Run: {task.run_id[:8]}",
            f"Step: {task.step_key}",
            f"Assignee: {task.assignee_role or 'anyone'}",
        ]
        if self._elicitation:
            parts.insert(0, "Kind: MCP input request")
        if not self._settled:
            parts.append(f"Time left: {format_time_left(task.due_at, now)}")
        # Non-breaking spaces inside each part make the line wrap only between parts.
        self.meta_label.setText("   ·   ".join(part.replace(" ", "\u00a0") for part in parts))

    # -- decisions -------------------------------------------------------------------------

    def _request(self, decision: str) -> None:
        if self.task is None or self.form is None:
            return
        # Accepting an input request needs the required fields, like approving a task.
        values = self.form.collect("approve" if decision == "accept" else decision)
        if values is None:
            self.show_outcome("Fix the marked fields, then try again.", "error", final=False)
            return
        comment = self.comment_edit.toPlainText().strip()
        if comment and self.comment_box.isVisible():
            values[COMMENT_KEY] = comment
        self.banner.hide()
        self.sig_resolve_requested.emit(self.task.id, decision, values)

    def set_busy(self, busy: bool) -> None:
        """Disable the buttons while a decision is being applied."""
        self.approve_button.setEnabled(not busy)
        self.reject_button.setEnabled(not busy)
        self.cancel_button.setEnabled(not busy)

    def show_outcome(self, message: str, kind: str = "info", *, final: bool = True) -> None:
        """Show ``message`` in the banner; ``final`` locks the form because the task is no longer pending."""
        self.banner.setText(message)
        self.banner.setStyleSheet(BANNER_STYLES.get(kind, BANNER_STYLES["info"]))
        self.banner.show()
        if final:
            self.set_busy(True)
            if self.form is not None:
                self.form.set_read_only(True)
            self.comment_edit.setReadOnly(True)
            self._settled = True
            self.tick()

    def banner_text(self) -> str:
        """Return the banner's message, or an empty string while the banner is hidden."""
        return "" if self.banner.isHidden() else self.banner.text()

    @property
    def settled(self) -> bool:
        """Whether the shown task was resolved, timed out or cancelled while shown."""
        return self._settled
