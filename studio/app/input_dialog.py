"""The run setup dialog: a form generated from a workflow's input schema, with saved defaults per workflow."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jsonschema
from jsonschema.validators import validator_for
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from studio.model.workflow import JsonValue, Workflow

if TYPE_CHECKING:
    from studio.store import Store

logger = logging.getLogger(__name__)

UNSET_CHOICE = "(not set)"
"""Text of the choice that leaves an optional enum or boolean input out of the run inputs."""


def required_inputs_missing(workflow: Workflow, saved: Mapping[str, JsonValue] | None = None) -> list[str]:
    """Return the required input properties that have no default (schema or ``saved``), in schema order."""
    required = workflow.input_schema.get("required")
    if not isinstance(required, list):
        return []
    defaults = {**workflow.input_defaults(), **(saved or {})}
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
    if text[0] in '{["' or text in ("true", "false", "null"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def schema_problems(schema: Mapping[str, Any], values: Mapping[str, JsonValue]) -> list[str]:
    """Return one message per way ``values`` break the input ``schema``, naming the input."""
    try:
        validator = validator_for(schema)(schema)
        errors = sorted(validator.iter_errors(dict(values)), key=lambda item: list(item.absolute_path))
    except jsonschema.exceptions.SchemaError as error:
        return [f"the workflow's input schema is invalid ({error.message}); fix it in the workflow"]
    problems = []
    for item in errors:
        path = list(item.absolute_path)
        where = f"input '{path[0]}'" if path else "the inputs"
        problems.append(f"{where}: {item.message}")
    return problems


def saved_run_inputs(store: Store | None, workflow: Workflow) -> dict[str, JsonValue]:
    """Return the run inputs saved for ``workflow`` that still fit its input schema, else an empty dict.

    A run started without the dialog uses these, so it gets the values the dialog would show.
    """
    if store is None:
        return {}
    from studio.store.workflow_library import get_run_defaults

    properties = workflow.input_schema.get("properties")
    known = properties if isinstance(properties, dict) else {}
    saved = {name: value for name, value in get_run_defaults(store, workflow.id).items() if name in known}
    values = {**workflow.input_defaults(), **saved}
    if schema_problems(workflow.input_schema, values):
        logger.info("the saved run inputs of workflow %s no longer fit its input schema", workflow.id)
        return {}
    return saved


def _text_of(value: JsonValue) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class RunInputDialog(QDialog):
    """Run setup form with one field per input property.

    Initial values are the inputs saved for the workflow, else the schema defaults. Required
    properties must be filled, and the values are checked against the input schema before the
    dialog accepts. With a store (``store``, else the parent window's ``store`` attribute) the
    dialog reads the saved values and, while "Remember these values" is checked, saves the accepted ones.
    """

    def __init__(self, workflow: Workflow, parent: QWidget | None = None, *, store: Store | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Run “{workflow.name}”")
        self.workflow = workflow
        self.store = store if store is not None else getattr(parent, "store", None)
        self.saved = self._read_saved()
        self._schema_types: dict[str, JsonValue] = {}
        self._required = self._required_names()
        self.fields: dict[str, QLineEdit] = {}
        """Text fields by input name: strings, numbers, arrays, objects and untyped inputs."""
        self.choices: dict[str, QComboBox] = {}
        """Choice fields by input name: enums and booleans."""
        self._choice_values: dict[str, list[JsonValue]] = {}
        self._values: dict[str, JsonValue] = {}

        form = QFormLayout()
        for name, spec in self._properties().items():
            self._add_field(form, name, spec)
        self.remember = QCheckBox("Remember these values for this workflow", self)
        self.remember.setChecked(self.store is not None)
        self.remember.setVisible(self.store is not None)
        self.error_label = QLabel(self)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d64545")
        self.error_label.hide()
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults,
            self,
        )
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Run")
        self.reset_button = buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        self.reset_button.setText("Schema defaults")
        self.reset_button.clicked.connect(self.reset_to_schema_defaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.remember)
        layout.addWidget(self.error_label)
        layout.addWidget(buttons)
        self._fill({**self.workflow.input_defaults(), **self.saved})

    # -- building ----------------------------------------------------------------------------

    def _read_saved(self) -> dict[str, JsonValue]:
        if self.store is None:
            return {}
        from studio.store.workflow_library import get_run_defaults

        saved = get_run_defaults(self.store, self.workflow.id)
        known = self._properties()
        return {name: value for name, value in saved.items() if name in known}

    def _properties(self) -> dict[str, dict[str, Any]]:
        properties = self.workflow.input_schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        return {name: spec if isinstance(spec, dict) else {} for name, spec in properties.items()}

    def _required_names(self) -> set[str]:
        required = self.workflow.input_schema.get("required")
        return {name for name in required if isinstance(name, str)} if isinstance(required, list) else set()

    def _add_field(self, form: QFormLayout, name: str, spec: dict[str, Any]) -> None:
        self._schema_types[name] = spec.get("type")
        label = str(spec.get("title") or name)
        label = f"{label} *" if name in self._required else label
        description = spec.get("description")
        enum = spec.get("enum")
        if isinstance(enum, list) or spec.get("type") == "boolean":
            values: list[JsonValue] = list(enum) if isinstance(enum, list) else [True, False]
            combo = QComboBox(self)
            if name not in self._required:
                values.insert(0, None)
            self._choice_values[name] = values
            for value in values:
                combo.addItem(UNSET_CHOICE if value is None and name not in self._required else _text_of(value))
            if description:
                combo.setToolTip(str(description))
            form.addRow(label, combo)
            self.choices[name] = combo
            return
        editor = QLineEdit(self)
        placeholder = str(description) if description else 'text, or JSON such as [1, 2] or {"a": 1}'
        editor.setPlaceholderText(placeholder)
        if description:
            editor.setToolTip(str(description))
        form.addRow(label, editor)
        self.fields[name] = editor

    def _fill(self, values: Mapping[str, JsonValue]) -> None:
        for name, editor in self.fields.items():
            editor.setText(_text_of(values[name]) if name in values else "")
        for name, combo in self.choices.items():
            options = self._choice_values[name]
            value = values.get(name)
            combo.setCurrentIndex(options.index(value) if value in options else 0)

    def reset_to_schema_defaults(self) -> None:
        """Put the schema defaults back into the form, dropping saved and typed values."""
        self._fill(self.workflow.input_defaults())

    # -- accepting ---------------------------------------------------------------------------

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
        if self.store is not None and self.remember.isChecked():
            self._save_values()
        super().accept()

    def _save_values(self) -> None:
        from studio.store import StoreError
        from studio.store.workflow_library import save_run_defaults

        try:
            save_run_defaults(self.store, self.workflow, self._values)  # type: ignore[arg-type]
        except StoreError as error:
            # Remembering is a convenience: the run still starts, and the log keeps the reason.
            logger.warning("saving the run inputs of workflow %s failed: %s", self.workflow.id, error)

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
        for name, combo in self.choices.items():
            value = self._choice_values[name][combo.currentIndex()]
            if value is not None or name in self._required:
                values[name] = value
        problems = schema_problems(self.workflow.input_schema, values)
        if problems:
            raise ValueError("\n".join(problems))
        return values
