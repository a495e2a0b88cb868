"""The step details panel widget: tabs for output, inputs, logs, attempts, error and the LLM exchange."""

from __future__ import annotations

import datetime
import logging

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.panels.step_details.json_tree import JsonTreeView
from studio.panels.step_details.model import StepDetails
from studio.panels.timeline.model import format_duration

logger = logging.getLogger(__name__)

ATTEMPT_COLUMNS = ("Attempt", "Status", "Started", "Duration", "Retry delay")


def _clock(at: float | None) -> str:
    return "" if at is None else datetime.datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]


class StepDetailsPanel(QWidget):
    """Shows one :class:`StepDetails`. Call :meth:`show_details` again to refresh it.

    The re-run and pin buttons only emit requests, and the window enables them with :meth:`set_step_actions`.
    """

    sig_rerun_requested = Signal(str, str)
    """Emitted with the run id and step id when the user asks to re-run the shown run from the shown step."""
    sig_pin_requested = Signal(str, str)
    """Emitted with the run id and step id when the user asks to pin the shown step's output."""
    sig_unpin_requested = Signal(str)
    """Emitted with the step id when the user asks to remove the shown step's pin."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.details: StepDetails | None = None
        self._build_action_buttons()
        self.header_label = QLabel("Click a step on the timeline to see its details", self)
        self.header_label.setWordWrap(True)
        self.output_view = JsonTreeView("result", self)
        self.inputs_view = JsonTreeView("inputs", self)
        self.logs_text = QPlainTextEdit(self)
        self.logs_text.setReadOnly(True)
        self.logs_text.setMaximumBlockCount(20_000)
        self.attempts_table = QTableWidget(0, len(ATTEMPT_COLUMNS), self)
        self.attempts_table.setHorizontalHeaderLabels(list(ATTEMPT_COLUMNS))
        self.attempts_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.attempts_table.verticalHeader().setVisible(False)
        self.attempts_table.setWordWrap(False)
        self.attempts_table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        header = self.attempts_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        # Errors are long (an MCP error carries the server's stderr tail), so they get their own text box.
        self.attempt_errors_text = QPlainTextEdit(self)
        self.attempt_errors_text.setReadOnly(True)
        self.attempts_page = QWidget(self)
        attempts_layout = QVBoxLayout(self.attempts_page)
        attempts_layout.setContentsMargins(0, 0, 0, 0)
        attempts_layout.addWidget(self.attempts_table, 1)
        attempts_layout.addWidget(QLabel("Errors", self.attempts_page))
        attempts_layout.addWidget(self.attempt_errors_text, 2)
        self.error_text = QPlainTextEdit(self)
        self.error_text.setReadOnly(True)
        self.llm_page = QWidget(self)
        self.prompt_text = QPlainTextEdit(self.llm_page)
        self.prompt_text.setReadOnly(True)
        self.response_text = QPlainTextEdit(self.llm_page)
        self.response_text.setReadOnly(True)
        self.tokens_label = QLabel("", self.llm_page)
        llm_layout = QVBoxLayout(self.llm_page)
        llm_layout.setContentsMargins(0, 0, 0, 0)
        llm_layout.addWidget(QLabel("Prompt", self.llm_page))
        llm_layout.addWidget(self.prompt_text)
        llm_layout.addWidget(QLabel("Response", self.llm_page))
        llm_layout.addWidget(self.response_text)
        llm_layout.addWidget(self.tokens_label)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.output_view, "Output")
        self.tabs.addTab(self.inputs_view, "Inputs")
        self.tabs.addTab(self.logs_text, "Logs")
        self.tabs.addTab(self.attempts_page, "Attempts")
        self.tabs.addTab(self.error_text, "Error")
        self.tabs.addTab(self.llm_page, "LLM")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.header_label)
        layout.addLayout(self._actions_row)
        layout.addWidget(self.tabs)
        self._set_llm_visible(False)

    def _build_action_buttons(self) -> None:
        self.rerun_button = QPushButton("Re-run from this step", self)
        self.rerun_button.setToolTip(
            "Start a new run that reuses the recorded upstream results and runs this step and its downstream steps"
        )
        self.rerun_button.clicked.connect(self._on_rerun_button_clicked)
        self.pin_button = QPushButton("Pin this output", self)
        self.pin_button.setToolTip("Test runs of this workflow use this output instead of running the step")
        self.pin_button.clicked.connect(self._on_pin_button_clicked)
        self.unpin_button = QPushButton("Unpin", self)
        self.unpin_button.setToolTip("Remove the pinned output, so test runs run the step again")
        self.unpin_button.clicked.connect(self._on_unpin_button_clicked)
        self._actions_row = QHBoxLayout()
        for button in (self.rerun_button, self.pin_button, self.unpin_button):
            self._actions_row.addWidget(button)
        self._actions_row.addStretch(1)
        self.set_step_actions(rerun=False, pin=False, unpin=False)

    def set_step_actions(self, *, rerun: bool, pin: bool, unpin: bool) -> None:
        """Enable the re-run, pin and unpin buttons for the shown step."""
        self.rerun_button.setEnabled(rerun)
        self.pin_button.setEnabled(pin)
        self.unpin_button.setEnabled(unpin)

    def _on_rerun_button_clicked(self) -> None:
        if self.details is not None:
            self.sig_rerun_requested.emit(self.details.run_id, self.details.step_id)

    def _on_pin_button_clicked(self) -> None:
        if self.details is not None:
            self.sig_pin_requested.emit(self.details.run_id, self.details.step_id)

    def _on_unpin_button_clicked(self) -> None:
        if self.details is not None:
            self.sig_unpin_requested.emit(self.details.step_id)

    def clear(self) -> None:
        self.details = None
        self.set_step_actions(rerun=False, pin=False, unpin=False)
        self.header_label.setText("Click a step on the timeline to see its details")
        for view in (self.output_view, self.inputs_view):
            view.set_value(None)
        for text in (self.logs_text, self.error_text, self.prompt_text, self.response_text, self.attempt_errors_text):
            text.clear()
        self.attempts_table.setRowCount(0)
        self.tokens_label.clear()
        self._set_llm_visible(False)

    def show_details(self, details: StepDetails) -> None:
        """Show ``details``; the open tab stays open when the same step is refreshed."""
        same_step = self.details is not None and self.details.step_key == details.step_key
        self.details = details
        self.header_label.setText(self._header(details))
        if not same_step or self.output_view.value() != details.result:
            self.output_view.set_value(details.result, f"steps.{details.step_id}.result")
        if not same_step or self.inputs_view.value() != details.inputs:
            self.inputs_view.set_value(details.inputs, "inputs")
        self.logs_text.setPlainText(
            "\n".join(f"{_clock(line.at)}  [{line.level}] {line.message}" for line in details.logs)
        )
        self._fill_attempts(details)
        self.error_text.setPlainText(details.error_text)
        self._set_llm_visible(details.step_type == "llm_call")
        if details.step_type == "llm_call":
            self.prompt_text.setPlainText(details.prompt_text)
            self.response_text.setPlainText(details.response_text)
            self.tokens_label.setText(self._tokens(details))
        if not same_step:
            self.tabs.setCurrentWidget(self.error_text if details.error else self.output_view)

    def _header(self, details: StepDetails) -> str:
        parts = [f"<b>{details.step_key}</b>", details.step_type or "step", details.status]
        if details.attempts:
            parts.append(f"attempt {details.attempts[-1].number}")
        if details.started_at is not None and details.finished_at is not None:
            parts.append(format_duration(details.finished_at - details.started_at))
        if details.task_id:
            parts.append(f"task {details.task_id}")
        return " · ".join(parts)

    def _tokens(self, details: StepDetails) -> str:
        if details.prompt_tokens is None and details.completion_tokens is None:
            return "Tokens: not recorded"
        prompt = int(details.prompt_tokens or 0)
        completion = int(details.completion_tokens or 0)
        return f"Tokens: {prompt} prompt + {completion} completion = {prompt + completion}"

    def _fill_attempts(self, details: StepDetails) -> None:
        self.attempts_table.setRowCount(len(details.attempts))
        for row, attempt in enumerate(details.attempts):
            duration = attempt.duration_s
            delay = attempt.retry_delay_s
            cells = (
                str(attempt.number),
                attempt.status,
                _clock(attempt.started_at),
                "" if duration is None else format_duration(duration),
                "" if delay is None else f"{delay:.2f} s",
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if attempt.error:
                    item.setToolTip(attempt.error)
                self.attempts_table.setItem(row, column, item)
        errors = [f"Attempt {attempt.number}: {attempt.error}" for attempt in details.attempts if attempt.error]
        self.attempt_errors_text.setPlainText("\n\n".join(errors))

    def _set_llm_visible(self, visible: bool) -> None:
        self.tabs.setTabVisible(self.tabs.indexOf(self.llm_page), visible)

    def tab_titles(self) -> list[str]:
        """Return the titles of the visible tabs, left to right."""
        return [self.tabs.tabText(index) for index in range(self.tabs.count()) if self.tabs.isTabVisible(index)]
