"""Field editors of the inspector: each converts its input on editing-finished and shows errors inline."""

from __future__ import annotations

import json
import logging
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QFocusEvent, QFontDatabase
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit, QPlainTextEdit, QVBoxLayout, QWidget

from studio.panels.inspector.values import Converter, InputError, text_value

logger = logging.getLogger(__name__)

ERROR_STYLE = "color: #b00020;"


class CommitTextEdit(QPlainTextEdit):
    """A plain text editor that emits :attr:`sig_editing_finished` when it loses focus after a change."""

    sig_editing_finished = Signal()
    """Emitted when focus leaves the editor and the text changed since it was set or last finished."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTabChangesFocus(True)
        self._changed = False
        self.textChanged.connect(self._on_text_changed)

    def _on_text_changed(self) -> None:
        self._changed = True

    def set_text_quietly(self, text: str) -> None:
        """Replace the text without counting it as a user change."""
        if text != self.toPlainText():
            self.setPlainText(text)
        self._changed = False

    def finish_editing(self) -> None:
        """Emit :attr:`sig_editing_finished` if the text changed, as leaving the editor does."""
        if self._changed:
            self._changed = False
            self.sig_editing_finished.emit()

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        self.finish_editing()


Input = QLineEdit | CommitTextEdit | QCheckBox | QComboBox


class FieldEditor(QWidget):
    """One field: an input widget, its converter and an error label below it.

    ``path`` is the step field the editor writes, such as ``config.prompt``. The editor emits
    :attr:`sig_value_committed` with the converted value when the user finishes editing and the
    value converts; otherwise it shows the converter's message and emits nothing.
    """

    sig_value_committed = Signal(str, object)
    """Emitted with the field path and the converted value."""

    def __init__(
        self,
        path: str,
        label: str,
        input_widget: Input,
        converter: Converter = text_value,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.path = path
        self.label = label
        self.input = input_widget
        self.converter = converter
        self._shown: Any = None
        input_widget.setParent(self)
        input_widget.setObjectName(f"input:{path}")
        self.error_label = QLabel("", self)
        self.error_label.setObjectName(f"error:{path}")
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(input_widget)
        layout.addWidget(self.error_label)
        self._connect_input()

    def _connect_input(self) -> None:
        widget = self.input
        if isinstance(widget, QLineEdit):
            widget.editingFinished.connect(self.commit)
        elif isinstance(widget, CommitTextEdit):
            widget.sig_editing_finished.connect(self.commit)
        elif isinstance(widget, QCheckBox):
            widget.clicked.connect(self.commit)
        else:
            widget.activated.connect(self.commit)

    def raw_value(self) -> Any:
        widget = self.input
        if isinstance(widget, QLineEdit):
            return widget.text()
        if isinstance(widget, CommitTextEdit):
            return widget.toPlainText()
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        return widget.currentData()

    def set_raw_value(self, raw: Any) -> None:
        """Show ``raw`` (text, a bool or a combo item's data) without committing, and clear any error."""
        widget = self.input
        widget.blockSignals(True)
        try:
            if isinstance(widget, QLineEdit):
                if widget.text() != raw:
                    widget.setText(str(raw))
            elif isinstance(widget, CommitTextEdit):
                widget.set_text_quietly(str(raw))
            elif isinstance(widget, QCheckBox):
                widget.setChecked(bool(raw))
            else:
                index = widget.findData(raw)
                if index < 0 and widget.isEditable():
                    widget.setEditText(str(raw))
                else:
                    widget.setCurrentIndex(max(index, 0))
        finally:
            widget.blockSignals(False)
        self._shown = self.raw_value()
        self.show_error("")

    def commit(self) -> None:
        """Convert the input and emit it, or show why it cannot be stored."""
        raw = self.raw_value()
        if raw == self._shown and not self.error_text():
            return
        try:
            value = self.converter(raw)
        except InputError as problem:
            self.show_error(str(problem))
            return
        self.show_error("")
        self._shown = raw
        self.sig_value_committed.emit(self.path, value)

    def show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    def error_text(self) -> str:
        return self.error_label.text()

    def focus_input(self) -> None:
        self.input.setFocus()


def line_editor(path: str, label: str, converter: Converter = text_value, placeholder: str = "") -> FieldEditor:
    line = QLineEdit()
    line.setPlaceholderText(placeholder)
    return FieldEditor(path, label, line, converter)


def text_area_editor(
    path: str, label: str, converter: Converter = text_value, *, monospace: bool = False, lines: int = 4
) -> FieldEditor:
    area = CommitTextEdit()
    if monospace:
        area.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        area.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
    area.setMinimumHeight(area.fontMetrics().lineSpacing() * lines + 12)
    return FieldEditor(path, label, area, converter)


def check_editor(path: str, label: str) -> FieldEditor:
    check = QCheckBox(label)
    return FieldEditor(path, label, check, bool)


def choice_editor(path: str, label: str, choices: list[tuple[str, Any]], converter: Converter | None = None) -> FieldEditor:
    """Return a combo box editor; ``choices`` are ``(display text, stored value)`` pairs."""
    combo = QComboBox()
    for text, value in choices:
        combo.addItem(text, value)
    return FieldEditor(path, label, combo, converter or (lambda value: value))


def json_text(value: Any, *, indent: int | None = 2) -> str:
    """Return ``value`` as JSON text for an editor; None shows as empty text."""
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, indent=indent)
