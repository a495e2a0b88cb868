"""Table editors of the inspector: a human task's form fields and a Lua script's named inputs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.model.validation_steps import LUA_KEYWORDS, LUA_NAME
from studio.model.workflow import FormField, FormFieldType
from studio.panels.inspector.editors import ERROR_STYLE
from studio.panels.inspector.values import InputError

logger = logging.getLogger(__name__)

FORM_FIELD_TYPES: tuple[FormFieldType, ...] = ("text", "multiline", "number", "boolean", "choice", "json")
FIELD_COLUMNS = ("Name", "Type", "Label", "Required", "Choices")
INPUT_COLUMNS = ("Name", "Value (template or JSON)")


class _TableEditor(QWidget):
    """A table with add, remove, up and down buttons that commits the whole list after each change."""

    sig_value_committed = Signal(str, object)
    """Emitted with the field path and the new list or mapping."""

    def __init__(self, path: str, label: str, columns: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self.label = label
        self.table = QTableWidget(0, len(columns), self)
        self.table.setObjectName(f"input:{path}")
        self.table.setHorizontalHeaderLabels(list(columns))
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(120)
        self.error_label = QLabel("", self)
        self.error_label.setObjectName(f"error:{path}")
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        buttons = QHBoxLayout()
        self.add_button = self._button("Add", self.add_row, buttons)
        self.remove_button = self._button("Remove", self.remove_selected, buttons)
        self.up_button = self._button("Up", lambda: self.move_selected(-1), buttons)
        self.down_button = self._button("Down", lambda: self.move_selected(1), buttons)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.error_label)
        self._loading = False
        self._shown: Any = None
        self.table.itemChanged.connect(self._on_table_item_changed)

    def _button(self, text: str, slot: Any, row: QHBoxLayout) -> QPushButton:
        button = QPushButton(text, self)
        button.clicked.connect(slot)
        row.addWidget(button)
        return button

    # -- rows ------------------------------------------------------------------------------

    def add_row(self) -> None:
        """Append a row with default values and commit."""
        self._loading = True
        try:
            self._append_row(self._default_row())
        finally:
            self._loading = False
        self.table.setCurrentCell(self.table.rowCount() - 1, 0)
        self.commit()

    def remove_selected(self) -> None:
        row = self.table.currentRow()
        if row < 0:
            return
        self.table.removeRow(row)
        self.commit()

    def move_selected(self, offset: int) -> None:
        """Move the selected row up (-1) or down (+1) and commit."""
        row = self.table.currentRow()
        target = row + offset
        if row < 0 or not 0 <= target < self.table.rowCount():
            return
        rows = [self._read_row(index) for index in range(self.table.rowCount())]
        rows[row], rows[target] = rows[target], rows[row]
        self._fill(rows)
        self.table.setCurrentCell(target, 0)
        self.commit()

    def _fill(self, rows: list[list[Any]]) -> None:
        self._loading = True
        try:
            self.table.setRowCount(0)
            for row in rows:
                self._append_row(row)
        finally:
            self._loading = False

    def _append_row(self, values: list[Any]) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        for column, value in enumerate(values):
            self._set_cell(row, column, value)

    def _set_cell(self, row: int, column: int, value: Any) -> None:
        self.table.setItem(row, column, QTableWidgetItem(str(value)))

    def _cell_text(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return "" if item is None else item.text()

    def _read_row(self, row: int) -> list[Any]:
        return [self._cell_text(row, column) for column in range(self.table.columnCount())]

    def _on_table_item_changed(self, _item: QTableWidgetItem) -> None:
        if not self._loading:
            self.commit()

    # -- values ----------------------------------------------------------------------------

    def commit(self) -> None:
        """Convert every row; emit the value, or show the first row's problem and emit nothing."""
        try:
            value = self._convert([self._read_row(row) for row in range(self.table.rowCount())])
        except InputError as problem:
            self.show_error(str(problem))
            return
        self.show_error("")
        if value == self._shown:
            return
        self._shown = value
        self.sig_value_committed.emit(self.path, value)

    def set_value(self, value: Any) -> None:
        """Show ``value`` (from the document) unless it is what the table already shows."""
        if value == self._shown and not self.error_label.text():
            return
        self._shown = value
        self._fill(self._rows_of(value))
        self.show_error("")

    def show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))

    def error_text(self) -> str:
        return self.error_label.text()

    def focus_input(self) -> None:
        self.table.setFocus()

    def _default_row(self) -> list[Any]:
        raise NotImplementedError

    def _rows_of(self, value: Any) -> list[list[Any]]:
        raise NotImplementedError

    def _convert(self, rows: list[list[Any]]) -> Any:
        raise NotImplementedError


class FormFieldsEditor(_TableEditor):
    """Edits ``config.fields`` of a human task: name, type, label, required and choices per field.

    A field's default and help text are kept when another column changes.
    """

    def __init__(self, path: str = "config.fields", parent: QWidget | None = None) -> None:
        super().__init__(path, "form fields", FIELD_COLUMNS, parent)
        self._extras: dict[str, dict[str, Any]] = {}

    def _default_row(self) -> list[Any]:
        taken = {self._cell_text(row, 0) for row in range(self.table.rowCount())}
        number = 1
        while f"field_{number}" in taken:
            number += 1
        return [f"field_{number}", "text", "", False, ""]

    def _set_cell(self, row: int, column: int, value: Any) -> None:
        if column == 1:
            combo = QComboBox(self.table)
            combo.addItems(list(FORM_FIELD_TYPES))
            combo.setCurrentText(str(value))
            combo.currentTextChanged.connect(self._on_type_changed)
            self.table.setCellWidget(row, column, combo)
            return
        if column == 3:
            item = QTableWidgetItem()
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsSelectable)
            item.setCheckState(Qt.CheckState.Checked if value else Qt.CheckState.Unchecked)
            self.table.setItem(row, column, item)
            return
        super()._set_cell(row, column, value)

    def _on_type_changed(self, _text: str) -> None:
        if not self._loading:
            self.commit()

    def _read_row(self, row: int) -> list[Any]:
        combo = self.table.cellWidget(row, 1)
        kind = combo.currentText() if isinstance(combo, QComboBox) else "text"
        required_item = self.table.item(row, 3)
        required = required_item is not None and required_item.checkState() == Qt.CheckState.Checked
        return [self._cell_text(row, 0), kind, self._cell_text(row, 2), required, self._cell_text(row, 4)]

    def _rows_of(self, value: Any) -> list[list[Any]]:
        rows = []
        self._extras = {}
        for data in value or []:
            form_field = FormField.model_validate(data)
            self._extras[form_field.name] = {"default": form_field.default, "help": form_field.help}
            choices = ", ".join(form_field.choices)
            rows.append([form_field.name, form_field.type, form_field.label, form_field.required, choices])
        return rows

    def _convert(self, rows: list[list[Any]]) -> list[dict[str, Any]]:
        fields: list[dict[str, Any]] = []
        for number, (name, kind, label, required, choices_text) in enumerate(rows, start=1):
            choices = [choice.strip() for choice in choices_text.split(",") if choice.strip()]
            data: dict[str, Any] = {"name": name.strip(), "type": kind, "label": label, "required": required,
                                    "choices": choices}
            data.update(self._extras.get(name.strip(), {}))
            try:
                FormField.model_validate(data)
            except ValueError as problem:
                raise InputError(_field_problem(number, name, kind, problem)) from None
            fields.append(data)
        names = [data["name"] for data in fields]
        for name in names:
            if names.count(name) > 1:
                raise InputError(f"form field name '{name}' is used twice; rename one of them")
        return fields


def _field_problem(number: int, name: str, kind: str, problem: ValueError) -> str:
    if not name.strip():
        return f"form field {number} has no name; enter a name such as 'comment'"
    if kind == "choice" and "choices" in str(problem):
        return f"form field '{name}' has type 'choice' but no choices; enter choices separated by commas"
    if "pattern" in str(problem) or "should match" in str(problem):
        return (f"form field name '{name}' is invalid; use letters, digits and '_', "
                "starting with a letter or '_' (at most 64 characters)")
    reason = str(problem).splitlines()[-1].strip()
    return f"form field '{name}' is invalid: {reason}; fix the row"


class _LineEditorDelegate(QStyledItemDelegate):
    """Calls ``attach`` with each line edit the table creates for editing a cell."""

    def __init__(self, attach: Callable[[QLineEdit], object], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._attach = attach

    def createEditor(
        self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QWidget:
        editor = super().createEditor(parent, option, index)
        if isinstance(editor, QLineEdit):
            self._attach(editor)
        return editor


class NamedValuesEditor(_TableEditor):
    """Edits a name to value mapping such as a Lua script's ``config.inputs``.

    Values are stored as JSON when the cell contains valid JSON that is not a plain word, otherwise as text,
    so ``{{steps.fetch.result}}`` stays a template and ``3`` becomes a number.
    """

    def __init__(self, path: str, label: str, parent: QWidget | None = None, *, lua_names: bool = False) -> None:
        super().__init__(path, label, INPUT_COLUMNS, parent)
        self.lua_names = lua_names
        """Whether names must be Lua identifiers that are not keywords, as Lua script inputs must."""

    def set_value_completer(self, attach: Callable[[QLineEdit], object]) -> None:
        """Call ``attach`` with the line edit of each value cell the user edits, to add template completion."""
        self.table.setItemDelegateForColumn(1, _LineEditorDelegate(attach, self.table))

    def _default_row(self) -> list[Any]:
        taken = {self._cell_text(row, 0) for row in range(self.table.rowCount())}
        number = 1
        while f"input_{number}" in taken:
            number += 1
        return [f"input_{number}", ""]

    def _rows_of(self, value: Any) -> list[list[Any]]:
        return [[name, item if isinstance(item, str) else json.dumps(item)] for name, item in (value or {}).items()]

    def _convert(self, rows: list[list[Any]]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for number, (name, text) in enumerate(rows, start=1):
            name = name.strip()
            if not name:
                raise InputError(f"{self.label} row {number} has no name; enter a name such as 'rows'")
            if name in values:
                raise InputError(f"{self.label} name '{name}' is used twice; rename one of them")
            if self.lua_names and (not LUA_NAME.match(name) or name in LUA_KEYWORDS):
                reason = "is a Lua keyword" if name in LUA_KEYWORDS else "is not a valid Lua identifier"
                raise InputError(f"{self.label} name '{name}' {reason}; use letters, digits and '_', "
                                 "starting with a letter or '_' (for example 'rows')")
            values[name] = _cell_value(text)
        return values


def _cell_value(text: str) -> Any:
    stripped = text.strip()
    looks_like_json = stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null") or _is_number(stripped)
    if not looks_like_json or stripped.startswith("{{"):
        return text
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
