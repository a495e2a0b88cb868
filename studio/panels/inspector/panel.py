"""The inspector panel: a form for the selected step whose edits go through the editor document."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from studio.model.edit_errors import EditError
from studio.model.output_shapes import DependencyIndex, OutputSchemaSource
from studio.model.validation import ToolCatalog
from studio.model.validation_findings import canonical
from studio.model.workflow import (
    AnyStep,
    ForEachStep,
    HumanTaskStep,
    JsonValue,
    LlmCallStep,
    LuaScriptStep,
    McpCallStep,
)
from studio.panels.inspector.completer import TemplateCompleter, attach_template_completer
from studio.panels.inspector.editors import FieldEditor
from studio.panels.inspector.sections import (
    ARGUMENTS_PATH,
    Editor,
    FormBuilder,
    argument_raw_value,
    build_common,
    build_for_each,
    build_human_task,
    build_llm_call,
    build_lua_script,
    build_mcp_call,
    common_values,
    config_values,
)
from studio.panels.inspector.values import InputError, checked_step, removal_warning, split_path

logger = logging.getLogger(__name__)

NO_STEP_TEXT = "Select one step on the canvas to edit it"


class InspectorPanel(QWidget):
    """Shows the form of one step of ``document`` and turns each finished edit into one undo command.

    Edits go through ``document.set_step_field`` and ``document.rename_step``, so undo, autosave and
    live validation see them like any other edit. A value that does not convert or that the step
    model rejects is shown under its editor and not stored.
    """

    sig_find_usages_requested = Signal(str)
    """Emitted with the shown step id when the user asks where its result is used."""
    sig_steps_removed_by_user = Signal(list)
    """Emitted with the removed step ids after the user confirmed a removal here."""

    def __init__(self, document: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document: Any = None
        self.catalog: ToolCatalog | None = None
        """Tool input schemas. The arguments form is generated when the catalog lists the step's tool."""
        self.schemas: OutputSchemaSource | None = None
        """Tool output schemas, for template completion."""
        self.last_results: Mapping[str, JsonValue] = {}
        """Step results of the last run by step id, for template completion."""
        self.step_id: str | None = None
        self.editors: dict[str, Editor] = {}
        self.completers: list[TemplateCompleter] = []
        self.delete_box: QMessageBox | None = None
        self._structure: object = None
        self._shown_values: dict[str, Any] = {}
        self._index: DependencyIndex | None = None
        self._build_ui()
        if document is not None:
            self.set_document(document)

    def _build_ui(self) -> None:
        self.header_label = QLabel(NO_STEP_TEXT, self)
        self.header_label.setWordWrap(True)
        self.find_usages_button = QPushButton("Find usages", self)
        self.find_usages_button.clicked.connect(self._on_find_usages_clicked)
        self.delete_button = QPushButton("Remove step…", self)
        self.delete_button.clicked.connect(self.request_removal)
        buttons = QHBoxLayout()
        buttons.addWidget(self.find_usages_button)
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        self.form_host = QWidget(self)
        self.form_layout = QVBoxLayout(self.form_host)
        self.form_layout.setContentsMargins(0, 0, 0, 0)
        self.scroll_area = QScrollArea(self)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setWidget(self.form_host)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header_label)
        layout.addLayout(buttons)
        layout.addWidget(self.scroll_area, 1)
        self._set_buttons_enabled(False)

    def _set_buttons_enabled(self, enabled: bool) -> None:
        self.find_usages_button.setEnabled(enabled)
        self.delete_button.setEnabled(enabled and not self._read_only())

    def _read_only(self) -> bool:
        return bool(getattr(self.document, "read_only", False))

    # -- document --------------------------------------------------------------------------

    def set_document(self, document: Any) -> None:
        """Follow ``document`` (an EditorDocument); the shown step is cleared."""
        if self.document is not None:
            for signal, slot in self._document_connections():
                signal.disconnect(slot)
        self.document = document
        self._index = None
        for signal, slot in self._document_connections():
            signal.connect(slot)
        self.show_step(None)

    def _document_connections(self) -> list[tuple[Any, Any]]:
        document = self.document
        return [
            (document.sig_reset, self._on_document_reset),
            (document.sig_steps_changed, self._on_document_steps_changed),
            (document.sig_steps_removed, self._on_document_steps_removed),
            (document.sig_step_renamed, self._on_document_step_renamed),
            (document.sig_steps_added, self._on_document_steps_changed),
            (document.sig_changed, self._on_document_changed),
        ]

    def _on_document_changed(self) -> None:
        self._index = None

    def _on_document_reset(self) -> None:
        self.refresh()

    def _on_document_steps_changed(self, step_ids: list[str]) -> None:
        # Body steps added or removed change a for_each's output choices, so any change refreshes.
        if self.step_id is not None:
            self.refresh()

    def _on_document_steps_removed(self, step_ids: list[str]) -> None:
        if self.step_id in step_ids or (self.step_id is not None and not self._has_step(self.step_id)):
            self.show_step(None)
        elif self.step_id is not None:
            self.refresh()

    def _on_document_step_renamed(self, old_id: str, new_id: str) -> None:
        if self.step_id == old_id:
            self.step_id = new_id
        self.refresh()

    def _has_step(self, step_id: str) -> bool:
        try:
            self.document.workflow.step(step_id)
        except KeyError:
            return False
        return True

    def current_step(self) -> AnyStep | None:
        if self.document is None or self.step_id is None:
            return None
        try:
            step: AnyStep = self.document.workflow.step(self.step_id)
        except KeyError:
            return None
        return step

    # -- showing ---------------------------------------------------------------------------

    def show_step(self, step_id: str | None) -> None:
        """Show the form of ``step_id``, or the empty state for None or an id the document lacks."""
        self.step_id = step_id
        self._structure = None
        self.refresh()

    def refresh(self) -> None:
        """Update the form from the document: values in place, or a new form when its layout changed."""
        step = self.current_step()
        if step is None:
            self.step_id = None
            self._clear_form()
            self.header_label.setText(NO_STEP_TEXT)
            self._set_buttons_enabled(False)
            return
        self.header_label.setText(f"<b>{step.title}</b> &nbsp; <i>{step.type}</i> &nbsp; id: {step.id}")
        self._set_buttons_enabled(True)
        structure = self._structure_of(step)
        if structure != self._structure:
            focused_path = self._focused_path()
            self._build_form(step)
            self._structure = structure
            self._shown_values = {}
            self._fill_values(step)
            if focused_path is not None:
                self.focus_field(focused_path)  # a rename rebuilds the form under the user's cursor
            return
        self._fill_values(step)

    def _focused_path(self) -> str | None:
        focused = self.focusWidget()
        if focused is None or not self.form_host.isAncestorOf(focused):
            return None
        return next((path for path, editor in self.editors.items() if editor.isAncestorOf(focused)), None)

    def _structure_of(self, step: AnyStep) -> object:
        """Return what decides which editors the form has; values alone never change it."""
        if isinstance(step, McpCallStep):
            schema = self._input_schema(step)
            return step.id, step.type, None if schema is None else canonical(schema)
        if isinstance(step, ForEachStep):
            return step.id, step.type, tuple(body.id for body in step.config.steps)
        return step.id, step.type

    def _input_schema(self, step: McpCallStep) -> Mapping[str, Any] | None:
        if self.catalog is None:
            return None
        config = step.config
        return self.catalog.input_schema(config.instance_id, config.server_url, config.tool)

    def _clear_form(self) -> None:
        focused = self.focusWidget()
        if focused is not None and self.form_host.isAncestorOf(focused):
            self.setFocus()  # finish an edit in progress before its editor goes away
        for completer in self.completers:
            completer.close()
        while self.form_layout.count():
            item = self.form_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self.editors = {}
        self.completers = []
        self._structure = None

    def _build_form(self, step: AnyStep) -> None:
        self._clear_form()
        builder = FormBuilder(self.form_host, self._attach_completer, self._attach_cell_completer)
        build_common(builder)
        if isinstance(step, McpCallStep):
            tools = self.catalog.tools_for(step.config.instance_id, step.config.server_url) if self.catalog else None
            build_mcp_call(builder, self._input_schema(step), sorted(tools[1]) if tools else [])
        elif isinstance(step, LlmCallStep):
            build_llm_call(builder)
        elif isinstance(step, HumanTaskStep):
            build_human_task(builder)
        elif isinstance(step, LuaScriptStep):
            build_lua_script(builder)
        elif isinstance(step, ForEachStep):
            build_for_each(builder, [body.id for body in step.config.steps])
        for group in builder.groups:
            self.form_layout.addWidget(group)
            group.show()  # at once, so focus_field() can focus an editor of the new form
        self.form_layout.addStretch(1)
        self.editors = builder.editors
        for editor in self.editors.values():
            editor.sig_value_committed.connect(self._on_editor_value_committed)
            editor.setEnabled(not self._read_only())
        logger.debug("inspector form for step %s has %d editors", step.id, len(self.editors))

    def _attach_completer(self, widget: QLineEdit | QPlainTextEdit) -> None:
        self.completers.append(attach_template_completer(widget, context=self._completion_context))

    def _attach_cell_completer(self, widget: QLineEdit) -> TemplateCompleter:
        # Not kept in self.completers: the line edit and its completer go away when the cell edit ends.
        return attach_template_completer(widget, context=self._completion_context)

    def _completion_context(self) -> tuple[object, str, dict[str, object]]:
        if self.step_id is None:
            raise KeyError("no step is shown")
        workflow = self.document.workflow
        if self._index is None:
            self._index = DependencyIndex(workflow)
        options: dict[str, object] = {"schemas": self.schemas, "last_results": self.last_results, "index": self._index}
        return workflow, self.step_id, options

    def _fill_values(self, step: AnyStep) -> None:
        values = common_values(step)
        values.update(config_values(step))
        if isinstance(step, McpCallStep):
            for path, editor in self.editors.items():
                if path.startswith(ARGUMENTS_PATH + "."):
                    argument = path[len(ARGUMENTS_PATH) + 1 :]
                    values[path] = argument_raw_value(editor, step.config.arguments.get(argument))
        for path, raw in values.items():
            shown = self.editors.get(path)
            if shown is None:
                continue
            editor = shown
            # An editor that shows rejected input keeps it until the document's value changes.
            if editor.error_text() and self._shown_values.get(path) == raw:
                continue
            if isinstance(editor, FieldEditor):
                editor.set_raw_value(raw)
            else:
                editor.set_value(raw)
        self._shown_values = values

    # -- editing ---------------------------------------------------------------------------

    def editor(self, field_path: str) -> Editor:
        """Return the editor of ``field_path``; raise KeyError naming the shown editors if there is none."""
        try:
            return self.editors[field_path]
        except KeyError:
            known = ", ".join(sorted(self.editors)) or "none"
            raise KeyError(f"the inspector has no editor for '{field_path}'; it shows: {known}") from None

    def _on_editor_value_committed(self, field_path: str, value: Any) -> None:
        step = self.current_step()
        editor = self.editors.get(field_path)
        if step is None or editor is None:
            return
        try:
            if field_path == "id":
                self._rename(step, value)
            elif field_path.startswith(ARGUMENTS_PATH + "."):
                self._set_argument(step, field_path[len(ARGUMENTS_PATH) + 1 :], value, editor)
            else:
                checked_step(step, field_path, value, editor.label)
                self.document.set_step_field(step.id, field_path, value)
        except (InputError, EditError) as problem:
            editor.show_error(str(problem))
            logger.debug("inspector rejected %s of step %s: %s", field_path, step.id, problem)

    def _rename(self, step: AnyStep, new_id: Any) -> None:
        new_id = str(new_id).strip()
        if new_id != step.id:
            self.document.rename_step(step.id, new_id)

    def _set_argument(self, step: AnyStep, name: str, value: Any, editor: Editor) -> None:
        assert isinstance(step, McpCallStep)
        arguments = dict(step.config.arguments)
        if value is None:
            arguments.pop(name, None)
        else:
            arguments[name] = value
        if arguments == step.config.arguments:
            return
        checked_step(step, ARGUMENTS_PATH, arguments, editor.label)
        self.document.set_step_field(step.id, ARGUMENTS_PATH, arguments)

    # -- focus, usages and removal ---------------------------------------------------------

    def focus_field(self, field_path: str) -> bool:
        """Focus the editor of ``field_path`` or of its nearest parent field; return whether one was found."""
        parts = split_path(field_path) if field_path else []
        while parts:
            path = _join_path(parts)
            editor = self.editors.get(path)
            if editor is not None:
                editor.focus_input()
                self.scroll_area.ensureWidgetVisible(editor)
                return True
            parts.pop()
        return False

    def _on_find_usages_clicked(self) -> None:
        if self.step_id is not None:
            self.sig_find_usages_requested.emit(self.step_id)

    def request_removal(self) -> None:
        """Remove the shown step; when other steps read it, list them and ask first."""
        if self.step_id is None or self.document is None:
            return
        self.delete_box = confirm_step_removal(self, self.document, [self.step_id], self.sig_steps_removed_by_user.emit)


def confirm_step_removal(
    parent: QWidget, document: Any, step_ids: list[str], on_removed: Any = None, *, removal: Any = None
) -> QMessageBox | None:
    """Remove ``step_ids`` from ``document``, first asking in a message box when other steps read them.

    Returns the open message box, or None when the steps were removed at once. ``on_removed`` is
    called with the ids after the removal. ``removal`` replaces the plain removal, for callers that
    delete more in the same undo step (the canvas also deletes selected edges and notes).
    """

    def remove() -> None:
        if removal is not None:
            removal()
        else:
            document.remove_steps(step_ids)
        if on_removed is not None:
            on_removed(list(step_ids))

    text = removal_warning(document.workflow, step_ids)
    if not text:
        remove()
        return None
    box = QMessageBox(QMessageBox.Icon.Warning, "Remove step", text, parent=parent)
    box.setObjectName("remove-step-box")
    yes = box.addButton("Remove", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)

    def on_finished(_result: int) -> None:
        if box.clickedButton() is yes:
            remove()

    box.finished.connect(on_finished)
    box.open()
    return box


def _join_path(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = part
    return text
