"""A compact form generated from a tool's JSON input schema, returning the arguments as a JSON object."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QLineEdit, QPlainTextEdit, QWidget

logger = logging.getLogger(__name__)

_UNSET = "(not set)"


class FormError(ValueError):
    """A field value that does not fit its schema; the message names the field and the expected value."""


def _declared_type(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [item for item in kind if item != "null"]
        return str(kinds[0]) if len(kinds) == 1 else None
    return str(kind) if isinstance(kind, str) else None


class SchemaForm(QWidget):
    """One field per top-level property of an object schema.

    Strings get a line edit (a combo box for an ``enum``), numbers a line edit parsed on read,
    booleans a check box, and objects, arrays or untyped values a JSON text box. Empty optional
    fields are left out of the arguments.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QFormLayout(self)
        self._fields: dict[str, tuple[QWidget, Mapping[str, Any], bool]] = {}

    @property
    def field_names(self) -> list[str]:
        return list(self._fields)

    def set_schema(self, schema: Mapping[str, Any]) -> None:
        """Rebuild the form for an input schema; a schema without properties gives an empty form."""
        while self._layout.rowCount():
            self._layout.removeRow(0)
        self._fields.clear()
        properties = schema.get("properties")
        required = set(schema.get("required") or [])
        if not isinstance(properties, Mapping) or not properties:
            self._layout.addRow(QLabel("This tool takes no arguments.", self))
            return
        for name, raw in properties.items():
            prop: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
            widget = self._editor_for(prop)
            widget.setObjectName(f"field-{name}")
            widget.setToolTip(str(prop.get("description") or ""))
            label = f"{name} *" if name in required else name
            self._layout.addRow(label, widget)
            self._fields[str(name)] = (widget, prop, name in required)

    def editor(self, name: str) -> QWidget:
        """Return the editor widget of a field (for tests and keyboard focus)."""
        return self._fields[name][0]

    def values(self) -> dict[str, Any]:
        """Return the arguments as a JSON object.

        Raises:
            FormError: a required field is empty, or a value does not parse as its declared type.
        """
        arguments: dict[str, Any] = {}
        for name, (widget, prop, required) in self._fields.items():
            value = self._read(name, widget, prop)
            if value is _MISSING:
                if required:
                    raise FormError(f"field '{name}' is required; enter a value")
                continue
            arguments[name] = value
        return arguments

    def _editor_for(self, prop: Mapping[str, Any]) -> QWidget:
        kind = _declared_type(prop)
        enum = prop.get("enum")
        if isinstance(enum, list) and enum:
            combo = QComboBox(self)
            combo.addItem(_UNSET)
            for option in enum:
                combo.addItem(json.dumps(option) if not isinstance(option, str) else option, option)
            return combo
        if kind == "boolean":
            box = QCheckBox(self)
            box.setChecked(bool(prop.get("default", False)))
            return box
        if kind in ("string", "integer", "number"):
            line = QLineEdit(self)
            if "default" in prop:
                line.setPlaceholderText(f"default: {prop['default']}")
            return line
        text = QPlainTextEdit(self)
        text.setPlaceholderText("JSON value")
        text.setFixedHeight(70)
        return text

    def _read(self, name: str, widget: QWidget, prop: Mapping[str, Any]) -> Any:
        kind = _declared_type(prop)
        if isinstance(widget, QComboBox):
            return _MISSING if widget.currentIndex() <= 0 else widget.currentData()
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QLineEdit):
            text = widget.text()
            if text == "":
                return _MISSING
            if kind == "integer":
                try:
                    return int(text)
                except ValueError:
                    raise FormError(f"field '{name}' needs a whole number, got {text!r}") from None
            if kind == "number":
                try:
                    return float(text)
                except ValueError:
                    raise FormError(f"field '{name}' needs a number, got {text!r}") from None
            return text
        assert isinstance(widget, QPlainTextEdit)
        text = widget.toPlainText().strip()
        if not text:
            return _MISSING
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise FormError(f"field '{name}' needs a JSON value: {error.msg} at line {error.lineno}") from None


_MISSING: Any = object()
