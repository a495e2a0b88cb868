"""The form generated from a human task's fields: one editor per field type, with inline errors."""

from __future__ import annotations

import logging

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from studio.model.workflow import FormField, JsonValue
from studio.panels.command_center.model import (
    FieldValueError,
    collect_values,
    convert_value,
    field_label,
    initial_bool,
    initial_text,
)

logger = logging.getLogger(__name__)

Editor = QLineEdit | QPlainTextEdit | QCheckBox | QComboBox
ERROR_STYLE = "color: #b00020;"
NO_CHOICE = ""
"""Combo box entry of a choice field that has no value yet."""


class TaskForm(QWidget):
    """Editors for a task's form fields, pre-filled with their defaults.

    Number and json fields are checked while typing; :meth:`collect` converts every value and
    shows each field's error under its editor.
    """

    def __init__(self, fields: list[FormField], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.fields = fields
        self.editors: dict[str, Editor] = {}
        self.error_labels: dict[str, QLabel] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for form_field in fields:
            editor = self._make_editor(form_field)
            self.editors[form_field.name] = editor
            layout.addRow(self._make_label(form_field, editor), self._wrap(form_field, editor))

    # -- construction ----------------------------------------------------------------------

    def _make_label(self, form_field: FormField, editor: Editor) -> QLabel:
        label = QLabel(field_label(form_field), self)
        label.setBuddy(editor)
        if form_field.required:
            label.setToolTip("Required to approve")
        return label

    def _wrap(self, form_field: FormField, editor: Editor) -> QWidget:
        """Stack the editor, its help text and its (initially hidden) error label."""
        box = QWidget(self)
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(editor)
        if form_field.help:
            help_label = QLabel(form_field.help, box)
            help_label.setWordWrap(True)
            help_label.setEnabled(False)
            column.addWidget(help_label)
        error = QLabel("", box)
        error.setObjectName(f"error-{form_field.name}")
        error.setStyleSheet(ERROR_STYLE)
        error.setWordWrap(True)
        error.hide()
        column.addWidget(error)
        self.error_labels[form_field.name] = error
        return box

    def _make_editor(self, form_field: FormField) -> Editor:
        kind = form_field.type
        if kind == "boolean":
            check = QCheckBox(self)
            check.setChecked(initial_bool(form_field))
            return check
        if kind == "choice":
            return self._make_combo(form_field)
        if kind in ("multiline", "json"):
            text_edit = QPlainTextEdit(self)
            text_edit.setPlainText(initial_text(form_field))
            text_edit.setTabChangesFocus(True)
            text_edit.setFixedHeight(text_edit.fontMetrics().lineSpacing() * 5 + 12)
            if kind == "json":
                text_edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
                text_edit.setPlaceholderText('JSON, for example {"key": "value"}')
                text_edit.textChanged.connect(lambda f=form_field: self._check_live(f))
            return text_edit
        line = QLineEdit(self)
        line.setText(initial_text(form_field))
        if kind == "number":
            line.setPlaceholderText("a number, such as 3 or 2.5")
            line.textChanged.connect(lambda _text, f=form_field: self._check_live(f))
        return line

    def _make_combo(self, form_field: FormField) -> QComboBox:
        combo = QComboBox(self)
        default = form_field.default if isinstance(form_field.default, str) else None
        if not form_field.required or default not in form_field.choices:
            combo.addItem("(none)" if not form_field.required else "(choose one)", NO_CHOICE)
        for choice in form_field.choices:
            combo.addItem(choice, choice)
        if default in form_field.choices:
            combo.setCurrentIndex(combo.findData(default))
        return combo

    # -- values ----------------------------------------------------------------------------

    def raw_value(self, name: str) -> str | bool:
        """Return the editor's current value: text, a check box's state or a choice's data."""
        editor = self.editors[name]
        if isinstance(editor, QCheckBox):
            return editor.isChecked()
        if isinstance(editor, QComboBox):
            return str(editor.currentData() or NO_CHOICE)
        if isinstance(editor, QPlainTextEdit):
            return editor.toPlainText()
        return editor.text()

    def collect(self, decision: str) -> dict[str, JsonValue] | None:
        """Convert every value for ``decision``; show each field's error and return None if any fails."""
        raw = {form_field.name: self.raw_value(form_field.name) for form_field in self.fields}
        values, errors = collect_values(self.fields, raw, decision)
        for form_field in self.fields:
            self.show_error(form_field.name, errors.get(form_field.name, ""))
        if errors:
            first = next(name for name in self.editors if name in errors)
            self.editors[first].setFocus()
            return None
        return values

    def show_error(self, name: str, message: str) -> None:
        label = self.error_labels[name]
        label.setText(message)
        label.setVisible(bool(message))

    def error_text(self, name: str) -> str:
        return self.error_labels[name].text()

    def is_valid(self) -> bool:
        """Return whether every number and json field's text currently converts; required fields are not checked."""
        return all(not self.error_labels[f.name].text() for f in self.fields if f.type in ("number", "json"))

    def _check_live(self, form_field: FormField) -> None:
        try:
            convert_value(form_field, self.raw_value(form_field.name))
        except FieldValueError as error:
            self.show_error(form_field.name, str(error))
        else:
            self.show_error(form_field.name, "")

    def set_read_only(self, read_only: bool) -> None:
        for editor in self.editors.values():
            editor.setEnabled(not read_only)
