"""The inspector's form sections: common step fields and the config of each step type."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, get_args

from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QLineEdit, QPlainTextEdit, QWidget

from studio.model.workflow import (
    AnyStep,
    ErrorKind,
    ForEachStep,
    HumanTaskStep,
    LlmCallStep,
    LuaScriptStep,
    McpCallStep,
)
from studio.panels.inspector.editors import (
    FieldEditor,
    check_editor,
    choice_editor,
    json_text,
    line_editor,
    text_area_editor,
)
from studio.panels.inspector.tables import FormFieldsEditor, NamedValuesEditor, _TableEditor
from studio.panels.inspector.values import (
    choice_list_converter,
    items_converter,
    json_converter,
    json_schema_converter,
    number_converter,
    optional_text,
    schema_value_converter,
)

logger = logging.getLogger(__name__)

Editor = FieldEditor | _TableEditor
ERROR_KINDS: tuple[str, ...] = get_args(ErrorKind)
ARGUMENTS_PATH = "config.arguments"


class FormBuilder:
    """Adds labelled editors to group boxes and records each editor under its field path."""

    def __init__(
        self,
        parent: QWidget,
        attach_completer: Callable[[QLineEdit | QPlainTextEdit], None],
        attach_cell_completer: Callable[[QLineEdit], object] | None = None,
    ) -> None:
        self.parent = parent
        self.attach_cell_completer = attach_cell_completer
        """Adds completion to a table cell's short-lived line edit, without keeping it."""
        self.editors: dict[str, Editor] = {}
        self.groups: list[QGroupBox] = []
        self._layout: QFormLayout | None = None
        self._attach_completer = attach_completer

    def group(self, title: str) -> None:
        box = QGroupBox(title, self.parent)
        self._layout = QFormLayout(box)
        self._layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.groups.append(box)

    def add(self, label: str, editor: Editor, *, template: bool = False, tooltip: str = "") -> Editor:
        assert self._layout is not None, "call group() before add()"
        if template and isinstance(editor, FieldEditor) and isinstance(editor.input, QLineEdit | QPlainTextEdit):
            self._attach_completer(editor.input)
            editor.input.setToolTip(tooltip or "Type {{ to insert a reference to a step result or a run input")
        elif tooltip:
            editor.setToolTip(tooltip)
        self._layout.addRow(QLabel(label), editor)
        self.editors[editor.path] = editor
        return editor

    def note(self, text: str) -> None:
        assert self._layout is not None
        label = QLabel(text)
        label.setWordWrap(True)
        label.setEnabled(False)
        self._layout.addRow(label)


def build_common(builder: FormBuilder) -> None:
    builder.group("Step")
    builder.add("Id", line_editor("id", "step id"), tooltip="Renaming rewrites every edge and reference to the step")
    builder.add("Title", line_editor("name", "title", placeholder="shown on the canvas; the id when empty"))
    builder.add("Description", text_area_editor("description", "description", lines=2))
    builder.add(
        "Timeout (s)",
        line_editor("timeout_s", "timeout", number_converter("timeout", minimum=0.001, optional=True),
                    placeholder="no limit"),
    )
    builder.add("", check_editor("continue_on_error", "Continue the run when this step fails"))
    builder.group("Retry")
    builder.add("Max attempts", line_editor("retry.max_attempts", "max attempts",
                                            number_converter("max attempts", integer=True, minimum=1, maximum=100)))
    builder.add("Backoff base (s)", line_editor("retry.backoff_base_s", "backoff base",
                                                number_converter("backoff base", minimum=0, maximum=3600)))
    builder.add("Backoff max (s)", line_editor("retry.backoff_max_s", "backoff max",
                                               number_converter("backoff max", minimum=0, maximum=86400)))
    builder.add("Retry on", line_editor("retry.retry_on", "retry on", choice_list_converter("retry on", ERROR_KINDS),
                                        placeholder=", ".join(ERROR_KINDS)))


def common_values(step: AnyStep) -> dict[str, Any]:
    """Return the raw editor values of the common fields."""
    return {
        "id": step.id,
        "name": step.name,
        "description": step.description,
        "timeout_s": _number_text(step.timeout_s),
        "continue_on_error": step.continue_on_error,
        "retry.max_attempts": str(step.retry.max_attempts),
        "retry.backoff_base_s": _number_text(step.retry.backoff_base_s),
        "retry.backoff_max_s": _number_text(step.retry.backoff_max_s),
        "retry.retry_on": ", ".join(step.retry.retry_on),
    }


def _number_text(value: float | int | None) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


# -- per type -------------------------------------------------------------------------------------


def build_mcp_call(builder: FormBuilder, input_schema: Mapping[str, Any] | None, tool_names: list[str]) -> None:
    builder.group("MCP call")
    builder.add("Instance", line_editor("config.instance_id", "instance id", optional_text,
                                        placeholder="a local MCP instance id"))
    builder.add("Server URL", line_editor("config.server_url", "server URL", optional_text,
                                          placeholder="https://… or stdio:command"))
    tool = builder.add("Tool", line_editor("config.tool", "tool"))
    if tool_names and isinstance(tool, FieldEditor) and isinstance(tool.input, QLineEdit):
        tool.input.setToolTip("Tools of this server: " + ", ".join(tool_names))
    builder.group("Arguments")
    if input_schema is None:
        builder.note("The tool's input schema is not known, so the arguments are edited as JSON.")
    else:
        build_argument_form(builder, input_schema)
        builder.note("All arguments as JSON (also for arguments the schema does not list):")
    builder.add("JSON", text_area_editor(ARGUMENTS_PATH, "arguments", json_converter("arguments", expect=dict),
                                         monospace=True))


def build_argument_form(builder: FormBuilder, input_schema: Mapping[str, Any]) -> None:
    """Add one editor per property of the tool's input schema, by the property's type."""
    properties = input_schema.get("properties")
    required = input_schema.get("required")
    required_names = set(required) if isinstance(required, list) else set()
    if not isinstance(properties, Mapping):
        return
    for name, schema in properties.items():
        if not isinstance(schema, Mapping):
            schema = {}
        label = f"{name} *" if name in required_names else str(name)
        editor, template = _argument_editor(f"{ARGUMENTS_PATH}.{name}", f"argument '{name}'", schema)
        description = schema.get("description")
        builder.add(label, editor, template=template, tooltip=description if isinstance(description, str) else "")


def _argument_editor(path: str, label: str, schema: Mapping[str, Any]) -> tuple[Editor, bool]:
    declared = schema.get("type")
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        enum_choices: list[tuple[str, Any]] = [("(not set)", None)] + [(json_text(value, indent=None), value) for value in enum]
        return choice_editor(path, label, enum_choices, schema_value_converter(label, schema, "value")), False
    if declared == "boolean":
        choices: list[tuple[str, Any]] = [("(not set)", None), ("true", True), ("false", False)]
        return choice_editor(path, label, choices, schema_value_converter(label, schema, "value")), False
    if declared in ("number", "integer"):
        placeholder = "a whole number" if declared == "integer" else "a number"
        return line_editor(path, label, schema_value_converter(label, schema, "number"),
                           placeholder=f"{placeholder} or a template"), True
    if declared == "string":
        return line_editor(path, label, schema_value_converter(label, schema, "text")), True
    example = '["a", "b"]' if declared == "array" else '{"key": "value"}'
    editor = text_area_editor(path, label, schema_value_converter(label, schema, "json"), monospace=True, lines=2)
    if isinstance(editor.input, QPlainTextEdit):
        editor.input.setPlaceholderText(f"JSON, for example {example}")
    return editor, False


def argument_raw_value(editor: Editor, value: Any) -> Any:
    """Return what an argument editor shows for ``value``; None (not set) shows as empty or "(not set)"."""
    if not isinstance(editor, FieldEditor) or isinstance(editor.input, QComboBox):
        return value
    if value is None:
        return ""
    if isinstance(editor.input, QLineEdit):
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _number_text(value)
        return json_text(value, indent=None)
    return json_text(value)


def build_llm_call(builder: FormBuilder) -> None:
    builder.group("LLM call")
    builder.add("Connection", line_editor("config.connection_id", "connection id", optional_text,
                                          placeholder="a stored LLM connection"))
    builder.add("Provider", choice_editor("config.provider", "provider",
                                          [("OpenAI", "openai"), ("Anthropic", "anthropic"), ("Ollama", "ollama")]))
    builder.add("Model", line_editor("config.model", "model"), template=True)
    builder.add("System prompt", text_area_editor("config.system_prompt", "system prompt", lines=3), template=True)
    builder.add("Prompt", text_area_editor("config.prompt", "prompt", lines=5), template=True)
    builder.add("Temperature", line_editor("config.temperature", "temperature",
                                           number_converter("temperature", minimum=0, maximum=2, optional=True),
                                           placeholder="the model's default"))
    builder.add("Max tokens", line_editor("config.max_tokens", "max tokens",
                                          number_converter("max tokens", integer=True, minimum=1, optional=True),
                                          placeholder="the model's default"))
    builder.add("Output schema", text_area_editor("config.output_schema", "output schema",
                                                  json_schema_converter("output schema"), monospace=True, lines=5),
                tooltip="JSON Schema of the reply; when set, the reply is parsed as JSON and checked")


def build_human_task(builder: FormBuilder) -> None:
    builder.group("Human task")
    builder.add("Task title", line_editor("config.title", "task title"), template=True)
    builder.add("Instructions", text_area_editor("config.instructions", "instructions", lines=3), template=True)
    builder.add("Assignee role", line_editor("config.assignee_role", "assignee role", optional_text))
    builder.add("Timeout (s)", line_editor("config.timeout_s", "task timeout",
                                           number_converter("task timeout", minimum=0.001, optional=True),
                                           placeholder="no limit"))
    builder.add("On timeout", choice_editor("config.on_timeout", "on timeout",
                                            [("fail the step", "fail"), ("approve with defaults", "default"),
                                             ("reject", "reject")]))
    builder.group("Form fields")
    builder.add("", FormFieldsEditor())


def build_lua_script(builder: FormBuilder) -> None:
    builder.group("Lua script")
    builder.add("Source", text_area_editor("config.source", "source", monospace=True, lines=12))
    builder.add("Timeout (s)", line_editor("config.timeout_s", "script timeout",
                                           number_converter("script timeout", minimum=0.001, maximum=3600)))
    builder.add("Memory (MB)", line_editor("config.memory_limit_mb", "memory limit",
                                           number_converter("memory limit", integer=True, minimum=1, maximum=4096)))
    builder.add("Output schema", text_area_editor("config.output_schema", "output schema",
                                                  json_schema_converter("output schema"), monospace=True, lines=4),
                tooltip="JSON Schema of the value the script returns; a result that does not match fails the step")
    builder.group("Inputs")
    builder.note("Each input is rendered before the script runs and is a global of that name in Lua.")
    inputs = NamedValuesEditor("config.inputs", "Lua input", lua_names=True)
    if builder.attach_cell_completer is not None:
        inputs.set_value_completer(builder.attach_cell_completer)
    builder.add("", inputs)


def build_for_each(builder: FormBuilder, body_ids: list[str]) -> None:
    builder.group("For each")
    builder.add("Items", line_editor("config.items", "items", items_converter,
                                     placeholder="{{steps.fetch.result.rows}} or a JSON list"), template=True)
    builder.add("Max parallelism", line_editor("config.max_parallelism", "max parallelism",
                                               number_converter("max parallelism", integer=True, minimum=1,
                                                                maximum=1000)))
    builder.add("On item error", choice_editor("config.error_mode", "error mode",
                                               [("stop all items (fail fast)", "fail_fast"),
                                                ("continue with the other items", "continue")]))
    output_choices: list[tuple[str, Any]] = [("(the body's only final step)", None)]
    output_choices.extend((body_id, body_id) for body_id in body_ids)
    builder.add("Output step", choice_editor("config.output", "output step", output_choices))


def config_values(step: AnyStep) -> dict[str, Any]:
    """Return the raw editor values of ``step``'s config fields (tool arguments excepted)."""
    if isinstance(step, McpCallStep):
        config = step.config
        return {
            "config.instance_id": config.instance_id or "",
            "config.server_url": config.server_url or "",
            "config.tool": config.tool,
            ARGUMENTS_PATH: json_text(config.arguments),
        }
    if isinstance(step, LlmCallStep):
        llm = step.config
        return {
            "config.connection_id": llm.connection_id or "",
            "config.provider": llm.provider,
            "config.model": llm.model,
            "config.system_prompt": llm.system_prompt,
            "config.prompt": llm.prompt,
            "config.temperature": _number_text(llm.temperature),
            "config.max_tokens": _number_text(llm.max_tokens),
            "config.output_schema": json_text(llm.output_schema),
        }
    if isinstance(step, HumanTaskStep):
        task = step.config
        return {
            "config.title": task.title,
            "config.instructions": task.instructions,
            "config.assignee_role": task.assignee_role or "",
            "config.timeout_s": _number_text(task.timeout_s),
            "config.on_timeout": task.on_timeout,
            "config.fields": [form_field.model_dump(mode="json") for form_field in task.fields],
        }
    if isinstance(step, LuaScriptStep):
        lua = step.config
        return {
            "config.source": lua.source,
            "config.timeout_s": _number_text(lua.timeout_s),
            "config.memory_limit_mb": str(lua.memory_limit_mb),
            "config.output_schema": json_text(lua.output_schema),
            "config.inputs": dict(lua.inputs),
        }
    assert isinstance(step, ForEachStep)
    loop = step.config
    items = loop.items if isinstance(loop.items, str) else json_text(loop.items, indent=None)
    return {
        "config.items": items,
        "config.max_parallelism": str(loop.max_parallelism),
        "config.error_mode": loop.error_mode,
        "config.output": loop.output,
    }
