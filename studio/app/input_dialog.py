"""A form generated from a workflow's input schema, shown before a run that needs inputs."""

from __future__ import annotations

import json
import logging

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from studio.model.workflow import JsonValue, Workflow

logger = logging.getLogger(__name__)


def required_inputs_missing(workflow: Workflow) -> list[str]:
    """Return the required input properties that have no default, in schema order."""
    required = workflow.input_schema.get("required")
    if not isinstance(required, list):
        return []
    defaults = workflow.input_defaults()
    return [name for name in required if isinstance(name, str) and name not in defaults]


def parse_input_text(text: str, schema_type: JsonValue = None) -> JsonValue:
    """Turn one form field's text into a JSON value.

    Text that looks like JSON (an object, list, quoted string, number, ``true``, ``false`` or
    ``null``) is parsed as JSON, unless the property's schema type is ``string``. Anything else stays
    a string. Raises ValueError naming the text when it looks like JSON but is malformed.
    """
    stripped = text.strip()
    if schema_type == "string" or not _looks_like_json(stripped):
        return text
    try:
        value: JsonValue = json.loads(stripped)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{stripped[:60]!r} looks like JSON but is invalid ({error.msg} at column {error.colno}). "
            "Fix it, or wrap plain text in quotes"
        ) from None
    return value


def _looks_like_json(text: str) -> bool:
    if not text:
        return False
    if text[0] in "{[\"" or text in ("true", "false", "null"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


class RunInputDialog(QDialog):
    """Form with one field per input property; required properties without a default must be filled."""

    def __init__(self, workflow: Workflow, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Run “{workflow.name}”")
        self._schema_types: dict[str, JsonValue] = {}
        self._required = set(required_inputs_missing(workflow))
        self.fields: dict[str, QLineEdit] = {}
        self._values: dict[str, JsonValue] = {}

        form = QFormLayout()
        properties = workflow.input_schema.get("properties")
        defaults = workflow.input_defaults()
        for name, spec in (properties.items() if isinstance(properties, dict) else []):
            spec_dict = spec if isinstance(spec, dict) else {}
            self._schema_types[name] = spec_dict.get("type")
            editor = QLineEdit(self)
            if name in defaults:
                default = defaults[name]
                editor.setText(default if isinstance(default, str) else json.dumps(default))
            description = spec_dict.get("description")
            editor.setPlaceholderText(str(description) if description else "text, or JSON such as [1, 2] or {\"a\": 1}")
            label = f"{name} *" if name in self._required else name
            form.addRow(label, editor)
            self.fields[name] = editor

        self.error_label = QLabel(self)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d64545")
        self.error_label.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Run")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)

    def values(self) -> dict[str, JsonValue]:
        """Return the inputs accepted by the last successful :meth:`accept`."""
        return dict(self._values)

    def accept(self) -> None:
        try:
            self._values = self._collect()
        except ValueError as error:
            self.error_label.setText(str(error))
            self.error_label.show()
            return
        super().accept()

    def _collect(self) -> dict[str, JsonValue]:
        values: dict[str, JsonValue] = {}
        for name, editor in self.fields.items():
            text = editor.text()
            if not text.strip():
                if name in self._required:
                    raise ValueError(f"input '{name}' is required but empty. Enter a value")
                continue
            try:
                values[name] = parse_input_text(text, self._schema_types.get(name))
            except ValueError as error:
                raise ValueError(f"input '{name}': {error}") from None
        return values
