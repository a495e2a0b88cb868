"""Tests of the step inspector: generated forms, undoable edits, rejected input, rename, removal and usages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from editor_host import EditorHost, build_workflow, for_each, human, llm, lua, mcp
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QFocusEvent, QFontInfo
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QLineEdit, QMessageBox, QPlainTextEdit
from pytestqt.qtbot import QtBot

from studio.engine.executors.mcp_model import ToolInfo
from studio.mcp.instances import create_instance
from studio.mcp.tool_cache import cache_tools
from studio.model.validation import ToolCatalog
from studio.panels.inspector import InspectorPanel, install_inspector
from studio.panels.inspector.completer import TemplateCompleter
from studio.panels.inspector.editors import CommitTextEdit, FieldEditor
from studio.panels.inspector.tables import FormFieldsEditor, NamedValuesEditor
from studio.store import open_store

SEARCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "what to look for"},
        "limit": {"type": "integer", "minimum": 1},
        "mode": {"enum": ["fast", "deep"]},
        "exact": {"type": "boolean"},
        "paths": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["query"],
}
CATALOG = ToolCatalog(instances={"fs": {"search": SEARCH_SCHEMA}})


def every_type_workflow() -> Any:
    return build_workflow(
        [
            mcp("fetch"),
            llm("summarise", prompt="Summarise {{steps.fetch.result}}"),
            human("approve"),
            lua("script", {"rows": "{{steps.fetch.result}}"}),
            for_each("loop", "{{steps.fetch.result}}", [lua("body", {"x": "{{item}}"})]),
        ],
        [("fetch", "summarise")],
    )


@pytest.fixture
def host(qtbot: QtBot) -> Iterator[EditorHost]:
    window = EditorHost(every_type_workflow())
    qtbot.addWidget(window)
    yield window


@pytest.fixture
def inspector(host: EditorHost) -> Iterator[InspectorPanel]:
    panel = InspectorPanel(host.document, host)
    panel.catalog = CATALOG
    yield panel
    panel.show_step(None)  # closes completion popups, which are top-level windows


def field(panel: InspectorPanel, path: str) -> FieldEditor:
    editor = panel.editor(path)
    assert isinstance(editor, FieldEditor)
    return editor


def enter_text(panel: InspectorPanel, path: str, text: str) -> FieldEditor:
    """Type ``text`` into the editor of ``path`` and finish editing as the user would."""
    editor = field(panel, path)
    widget = editor.input
    if isinstance(widget, QLineEdit):
        widget.setText(text)
        QTest.keyClick(widget, Qt.Key.Key_Return)
    else:
        assert isinstance(widget, CommitTextEdit)
        widget.setPlainText(text)
        QApplication.sendEvent(widget, QFocusEvent(QEvent.Type.FocusOut, Qt.FocusReason.TabFocusReason))
    return editor


def choose(panel: InspectorPanel, path: str, value: Any) -> None:
    combo = field(panel, path).input
    assert isinstance(combo, QComboBox)
    index = combo.findData(value)
    assert index >= 0, f"{value!r} is not a choice of {path}"
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


# -- forms per type -------------------------------------------------------------------------------

COMMON = {"id", "name", "description", "timeout_s", "continue_on_error", "retry.max_attempts", "retry.retry_on"}


@pytest.mark.parametrize(
    ("step_id", "expected"),
    [
        ("fetch", {"config.instance_id", "config.server_url", "config.tool", "config.arguments",
                   "config.arguments.query", "config.arguments.limit", "config.arguments.mode"}),
        ("summarise", {"config.connection_id", "config.model", "config.prompt", "config.system_prompt",
                       "config.temperature", "config.max_tokens", "config.output_schema"}),
        ("approve", {"config.title", "config.instructions", "config.fields", "config.on_timeout"}),
        ("script", {"config.source", "config.inputs", "config.timeout_s", "config.memory_limit_mb",
                    "config.output_schema"}),
        ("loop", {"config.items", "config.max_parallelism", "config.error_mode", "config.output"}),
    ],
)
def test_form_has_editors_of_type(inspector: InspectorPanel, step_id: str, expected: set[str]) -> None:
    inspector.show_step(step_id)
    assert set(inspector.editors) >= COMMON
    assert expected <= set(inspector.editors)


def test_form_shows_current_values(inspector: InspectorPanel) -> None:
    inspector.show_step("summarise")
    assert field(inspector, "id").raw_value() == "summarise"
    assert field(inspector, "config.prompt").raw_value() == "Summarise {{steps.fetch.result}}"
    assert field(inspector, "retry.max_attempts").raw_value() == "1"


def test_argument_editors_follow_schema_types(inspector: InspectorPanel) -> None:
    inspector.show_step("fetch")
    assert isinstance(field(inspector, "config.arguments.query").input, QLineEdit)
    assert isinstance(field(inspector, "config.arguments.limit").input, QLineEdit)
    assert isinstance(field(inspector, "config.arguments.mode").input, QComboBox)
    assert isinstance(field(inspector, "config.arguments.exact").input, QComboBox)
    assert isinstance(field(inspector, "config.arguments.paths").input, QPlainTextEdit)
    assert field(inspector, "config.arguments.query").raw_value() == "owls"


def test_unknown_tool_gets_raw_json_only(inspector: InspectorPanel) -> None:
    inspector.catalog = None
    inspector.show_step("fetch")
    assert "config.arguments" in inspector.editors
    assert not [path for path in inspector.editors if path.startswith("config.arguments.")]


def test_lua_source_is_monospace(inspector: InspectorPanel) -> None:
    inspector.show_step("script")
    assert QFontInfo(field(inspector, "config.source").input.font()).fixedPitch()


def test_empty_selection_shows_hint(inspector: InspectorPanel) -> None:
    inspector.show_step(None)
    assert inspector.editors == {}
    assert not inspector.delete_button.isEnabled()


# -- edits ----------------------------------------------------------------------------------------


def test_title_edit_is_one_undo_step(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("summarise")
    before = host.document.undo_stack.count()
    enter_text(inspector, "name", "Summary")
    assert host.document.workflow.step("summarise").name == "Summary"
    assert host.document.undo_stack.count() == before + 1
    host.document.undo_stack.undo()
    assert host.document.workflow.step("summarise").name == ""
    assert field(inspector, "name").raw_value() == ""


def test_typing_alone_commits_nothing(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("summarise")
    before = host.document.undo_stack.count()
    widget = field(inspector, "config.prompt").input
    assert isinstance(widget, CommitTextEdit)
    widget.setPlainText("draft")
    assert host.document.undo_stack.count() == before
    assert host.document.workflow.step("summarise").config.prompt == "Summarise {{steps.fetch.result}}"


def test_prompt_commits_on_focus_out(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("summarise")
    enter_text(inspector, "config.prompt", "New {{input.topic}}")
    step = host.document.workflow.step("summarise")
    assert step.config.prompt == "New {{input.topic}}"  # type: ignore[union-attr]


def test_number_fields_store_numbers(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("summarise")
    enter_text(inspector, "retry.max_attempts", "3")
    enter_text(inspector, "config.temperature", "0.5")
    enter_text(inspector, "timeout_s", "")
    step = host.document.workflow.step("summarise")
    assert step.retry.max_attempts == 3
    assert step.config.temperature == 0.5  # type: ignore[union-attr]
    assert step.timeout_s is None


def test_checkbox_commits_on_click(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("script")
    check = field(inspector, "continue_on_error").input
    assert isinstance(check, QCheckBox)
    check.click()
    assert host.document.workflow.step("script").continue_on_error is True


def test_argument_edits_update_arguments(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("fetch")
    enter_text(inspector, "config.arguments.limit", "5")
    choose(inspector, "config.arguments.mode", "deep")
    enter_text(inspector, "config.arguments.paths", '["a", "b"]')
    arguments = host.document.workflow.step("fetch").config.arguments  # type: ignore[union-attr]
    assert arguments == {"query": "owls", "limit": 5, "mode": "deep", "paths": ["a", "b"]}
    choose(inspector, "config.arguments.mode", None)
    arguments = host.document.workflow.step("fetch").config.arguments  # type: ignore[union-attr]
    assert "mode" not in arguments


def test_argument_accepts_template(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("fetch")
    enter_text(inspector, "config.arguments.limit", "{{input.topic}}")
    arguments = host.document.workflow.step("fetch").config.arguments  # type: ignore[union-attr]
    assert arguments["limit"] == "{{input.topic}}"


def test_raw_arguments_json_edit(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("fetch")
    enter_text(inspector, "config.arguments", '{"query": "cats", "extra": 1}')
    arguments = host.document.workflow.step("fetch").config.arguments  # type: ignore[union-attr]
    assert arguments == {"query": "cats", "extra": 1}
    assert field(inspector, "config.arguments.query").raw_value() == "cats"


def test_for_each_fields(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("loop")
    enter_text(inspector, "config.items", "[1, 2, 3]")
    enter_text(inspector, "config.max_parallelism", "8")
    choose(inspector, "config.error_mode", "continue")
    choose(inspector, "config.output", "body")
    config = host.document.workflow.step("loop").config  # type: ignore[union-attr]
    assert config.items == [1, 2, 3]
    assert config.max_parallelism == 8
    assert config.error_mode == "continue"
    assert config.output == "body"


def test_output_schema_edit(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("summarise")
    enter_text(inspector, "config.output_schema", '{"type": "object", "properties": {"t": {"type": "string"}}}')
    schema = host.document.workflow.step("summarise").config.output_schema  # type: ignore[union-attr]
    assert schema == {"type": "object", "properties": {"t": {"type": "string"}}}


def test_lua_output_schema_edit(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("script")
    enter_text(inspector, "config.output_schema", '{"type": "object", "properties": {"n": {"type": "number"}}}')
    schema = host.document.workflow.step("script").config.output_schema  # type: ignore[union-attr]
    assert schema == {"type": "object", "properties": {"n": {"type": "number"}}}


def test_human_fields_add_edit_reorder(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("approve")
    editor = inspector.editor("config.fields")
    assert isinstance(editor, FormFieldsEditor)
    editor.add_button.click()
    editor.add_button.click()
    fields = host.document.workflow.step("approve").config.fields  # type: ignore[union-attr]
    assert [form_field.name for form_field in fields] == ["field_1", "field_2"]
    editor = inspector.editor("config.fields")
    assert isinstance(editor, FormFieldsEditor)
    editor.table.item(1, 0).setText("comment")
    editor.table.item(1, 3).setCheckState(Qt.CheckState.Checked)
    editor.table.setCurrentCell(1, 0)
    editor.up_button.click()
    fields = host.document.workflow.step("approve").config.fields  # type: ignore[union-attr]
    assert [form_field.name for form_field in fields] == ["comment", "field_1"]
    assert fields[0].required is True
    editor.table.setCurrentCell(1, 0)
    editor.remove_button.click()
    fields = host.document.workflow.step("approve").config.fields  # type: ignore[union-attr]
    assert [form_field.name for form_field in fields] == ["comment"]


def test_lua_inputs_table(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("script")
    editor = inspector.editor("config.inputs")
    assert isinstance(editor, NamedValuesEditor)
    editor.add_button.click()
    editor.table.item(1, 1).setText("42")
    inputs = host.document.workflow.step("script").config.inputs  # type: ignore[union-attr]
    assert inputs == {"rows": "{{steps.fetch.result}}", "input_1": 42}


def test_lua_input_name_must_be_identifier(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("script")
    editor = inspector.editor("config.inputs")
    assert isinstance(editor, NamedValuesEditor)
    editor.table.item(0, 0).setText("end")
    assert "Lua input name 'end' is a Lua keyword" in editor.error_text()
    editor.table.item(0, 0).setText("two words")
    assert "Lua input name 'two words' is not a valid Lua identifier" in editor.error_text()
    inputs = host.document.workflow.step("script").config.inputs  # type: ignore[union-attr]
    assert inputs == {"rows": "{{steps.fetch.result}}"}


def test_lua_input_cell_completes(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("script")
    editor = inspector.editor("config.inputs")
    assert isinstance(editor, NamedValuesEditor)
    item = editor.table.item(0, 1)
    editor.table.openPersistentEditor(item)
    line = editor.table.indexWidget(editor.table.indexFromItem(item))
    assert isinstance(line, QLineEdit)
    completer = line.findChild(TemplateCompleter)
    assert completer is not None
    line.clear()
    QTest.keyClicks(line, "{{steps.f")
    assert completer.candidates() == ["steps.fetch.result"]
    editor.table.closePersistentEditor(item)


# -- rejected input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step_id", "path", "text", "message"),
    [
        ("summarise", "retry.max_attempts", "0", "max attempts 0 is below the minimum 1"),
        ("summarise", "retry.max_attempts", "many", "max attempts 'many' is not a whole number"),
        ("summarise", "config.temperature", "3", "temperature 3 is above the maximum 2"),
        ("summarise", "config.output_schema", "{oops", "output schema is not valid JSON"),
        ("summarise", "config.output_schema", '{"type": 5}', "output schema is not a valid JSON Schema"),
        ("summarise", "retry.retry_on", "timeout, sometimes", "retry on 'sometimes' is not known"),
        ("fetch", "config.arguments.limit", "0", "argument 'limit' 0 does not fit the tool's input schema"),
        ("fetch", "config.arguments.limit", "2.5", "argument 'limit' '2.5' is not a whole number"),
        ("fetch", "config.arguments", "[1]", "arguments must be a JSON object"),
        ("loop", "config.items", "[1, 2", "items is not valid JSON"),
        ("loop", "config.max_parallelism", "0", "max parallelism 0 is below the minimum 1"),
    ],
)
def test_bad_input_is_rejected_with_message(
    host: EditorHost, inspector: InspectorPanel, step_id: str, path: str, text: str, message: str
) -> None:
    inspector.show_step(step_id)
    before = host.document.workflow.step(step_id).model_dump()
    count = host.document.undo_stack.count()
    editor = enter_text(inspector, path, text)
    assert message in editor.error_text()
    assert editor.error_label.isVisibleTo(inspector)
    assert host.document.undo_stack.count() == count
    assert host.document.workflow.step(step_id).model_dump() == before


def test_error_clears_after_good_value(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("summarise")
    editor = enter_text(inspector, "retry.max_attempts", "0")
    assert editor.error_text()
    editor = enter_text(inspector, "retry.max_attempts", "2")
    assert editor.error_text() == ""
    assert host.document.workflow.step("summarise").retry.max_attempts == 2


def test_rejected_value_survives_other_edits(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("summarise")
    enter_text(inspector, "retry.max_attempts", "0")
    enter_text(inspector, "name", "Other")
    assert field(inspector, "retry.max_attempts").raw_value() == "0"
    assert field(inspector, "retry.max_attempts").error_text()


def test_choice_without_choices_is_rejected(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("approve")
    editor = inspector.editor("config.fields")
    assert isinstance(editor, FormFieldsEditor)
    editor.add_button.click()
    editor = inspector.editor("config.fields")
    assert isinstance(editor, FormFieldsEditor)
    combo = editor.table.cellWidget(0, 1)
    assert isinstance(combo, QComboBox)
    combo.setCurrentText("choice")
    assert "has type 'choice' but no choices" in editor.error_text()
    fields = host.document.workflow.step("approve").config.fields  # type: ignore[union-attr]
    assert fields[0].type == "text"


def test_bad_form_field_name_is_rejected(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("approve")
    editor = inspector.editor("config.fields")
    assert isinstance(editor, FormFieldsEditor)
    editor.add_button.click()
    editor.table.item(0, 0).setText("1 bad")
    assert "form field name '1 bad' is invalid" in editor.error_text()


# -- rename ---------------------------------------------------------------------------------------


def test_rename_rewrites_references(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("fetch")
    count = host.document.undo_stack.count()
    enter_text(inspector, "id", "download")
    workflow = host.document.workflow
    assert workflow.step("download").type == "mcp_call"
    assert workflow.step("summarise").config.prompt == "Summarise {{steps.download.result}}"  # type: ignore[union-attr]
    assert workflow.step("script").config.inputs == {"rows": "{{steps.download.result}}"}  # type: ignore[union-attr]
    assert workflow.edges[0].source == "download"
    assert host.document.undo_stack.count() == count + 1
    assert inspector.step_id == "download"
    assert field(inspector, "id").raw_value() == "download"
    host.document.undo_stack.undo()
    assert host.document.workflow.step("summarise").config.prompt == "Summarise {{steps.fetch.result}}"  # type: ignore[union-attr]
    assert inspector.step_id == "fetch"


def test_rename_keeps_focus_on_id(host: EditorHost, inspector: InspectorPanel, qtbot: QtBot) -> None:
    host.setCentralWidget(inspector)
    with qtbot.waitActive(host):
        host.show()
        host.activateWindow()
    inspector.show_step("fetch")
    field(inspector, "id").focus_input()
    enter_text(inspector, "id", "download")
    assert inspector.step_id == "download"
    assert QApplication.focusWidget() is field(inspector, "id").input


def test_rename_to_taken_id_is_rejected(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("fetch")
    editor = enter_text(inspector, "id", "summarise")
    assert "summarise" in editor.error_text()
    assert host.document.workflow.step("fetch").type == "mcp_call"


def test_rename_to_invalid_id_is_rejected(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("fetch")
    editor = enter_text(inspector, "id", "Bad Id!")
    assert "Bad Id!" in editor.error_text()


# -- removal and usages ---------------------------------------------------------------------------


def test_removal_lists_usages_and_asks(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("fetch")
    inspector.request_removal()
    box = inspector.delete_box
    assert box is not None
    assert box.isVisible()
    text = box.text()
    assert "step 'summarise', field config.prompt" in text
    assert "step 'script', field config.inputs.rows" in text
    assert "step 'loop', field config.items" in text
    assert host.document.workflow.step("fetch")  # nothing is removed before the user decides
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert host.document.workflow.step("fetch").type == "mcp_call"


def test_confirmed_removal_removes_step(host: EditorHost, inspector: InspectorPanel, qtbot: QtBot) -> None:
    inspector.show_step("fetch")
    with qtbot.waitSignal(inspector.sig_steps_removed_by_user, timeout=2000) as blocker:
        inspector.request_removal()
        box = inspector.delete_box
        assert box is not None
        remove = next(button for button in box.buttons() if button.text() == "Remove")
        remove.click()
    assert blocker.args == [["fetch"]]
    assert "fetch" not in [step.id for step in host.document.workflow.iter_steps()]
    assert inspector.step_id is None


def test_unreferenced_step_is_removed_at_once(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("approve")
    inspector.request_removal()
    assert inspector.delete_box is None
    assert "approve" not in [step.id for step in host.document.workflow.iter_steps()]


def test_find_usages_dock_selects_step_and_field(host: EditorHost, qtbot: QtBot) -> None:
    install = install_inspector(host, catalog=CATALOG)
    with qtbot.waitActive(host):
        host.show()
        host.activateWindow()
    host.view.set_selected_step_ids(["fetch"])
    assert install.panel.step_id == "fetch"
    install.action_find_usages.trigger()
    usages = install.usages
    assert [(usage.step_id, usage.field_path) for usage in usages.usages] == [
        ("summarise", "config.prompt"),
        ("script", "config.inputs.rows"),
        ("loop", "config.items"),
    ]
    assert usages.tree.topLevelItemCount() == 3
    usages.activate_row(0)
    assert host.view.selected_step_ids() == ["summarise"]
    assert install.panel.step_id == "summarise"
    assert QApplication.focusWidget() is field(install.panel, "config.prompt").input


def test_selection_drives_inspector(host: EditorHost) -> None:
    install = install_inspector(host)
    host.view.set_selected_step_ids(["script"])
    assert install.panel.step_id == "script"
    host.view.set_selected_step_ids(["script", "fetch"])
    assert install.panel.step_id is None


def test_install_adds_edit_menu_actions(host: EditorHost) -> None:
    install = install_inspector(host)
    menus = [action.text() for action in host.menuBar().actions()]
    assert "&Edit" in menus
    assert install.action_find_usages.shortcut().toString() == "Shift+F12"
    assert host.inspector is install.panel  # type: ignore[attr-defined]


# -- template completion --------------------------------------------------------------------------


def test_prompt_completes_step_paths(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("script")
    editor = field(inspector, "config.source")  # the Lua source is code and has no completion
    assert not any(completer.widget is editor.input for completer in inspector.completers)
    inspector.show_step("summarise")
    widget = field(inspector, "config.prompt").input
    completer = next(completer for completer in inspector.completers if completer.widget is widget)
    assert isinstance(widget, QPlainTextEdit)
    widget.setPlainText("")
    QTest.keyClicks(widget, "Use {{steps.")
    assert completer.candidates() == [
        "steps.fetch.result", "steps.approve.result", "steps.script.result", "steps.loop.result"
    ]
    completer.insert_completion("steps.fetch.result")
    assert widget.toPlainText() == "Use {{steps.fetch.result}}"


def test_argument_line_completes_inputs(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("fetch")
    widget = field(inspector, "config.arguments.query").input
    assert isinstance(widget, QLineEdit)
    completer = next(completer for completer in inspector.completers if completer.widget is widget)
    widget.clear()
    QTest.keyClicks(widget, "{{input.")
    assert completer.candidates() == ["input.topic"]
    completer.insert_completion("input.topic")
    assert widget.text() == "{{input.topic}}"
    QTest.keyClick(widget, Qt.Key.Key_Return)
    arguments = host.document.workflow.step("fetch").config.arguments  # type: ignore[union-attr]
    assert arguments["query"] == "{{input.topic}}"


def test_body_items_complete_item(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.show_step("body")
    editor = inspector.editor("config.inputs")
    assert isinstance(editor, NamedValuesEditor)
    inspector.show_step("loop")
    widget = field(inspector, "config.items").input
    completer = next(completer for completer in inspector.completers if completer.widget is widget)
    assert isinstance(widget, QLineEdit)
    widget.clear()
    QTest.keyClicks(widget, "{{")
    assert "item" not in completer.candidates()  # items of a for_each are read outside its body
    assert "steps." in completer.candidates()


def test_completion_follows_last_run_results(host: EditorHost, inspector: InspectorPanel) -> None:
    inspector.last_results = {"fetch": {"rows": [{"email": "a@example.org"}]}}
    inspector.show_step("summarise")
    widget = field(inspector, "config.model").input
    completer = next(completer for completer in inspector.completers if completer.widget is widget)
    assert isinstance(widget, QLineEdit)
    widget.clear()
    QTest.keyClicks(widget, "{{steps.fetch.result.rows[0].")
    assert completer.candidates() == ["steps.fetch.result.rows[0].email"]


# -- tool schemas from the store ------------------------------------------------------------------


def test_install_reads_tool_cache(tmp_path: Path, qtbot: QtBot) -> None:
    store = open_store(tmp_path / "studio.db")
    try:
        instance = create_instance(store, "builtin:studio-tools", name="tools")
        output_schema = {"type": "object", "properties": {"hits": {"type": "array"}, "total": {"type": "integer"}}}
        cache_tools(store, instance.id, [ToolInfo("search", "find things", SEARCH_SCHEMA, output_schema)], {})
        step = mcp("fetch")
        step["config"]["instance_id"] = instance.id
        window = EditorHost(build_workflow([step, llm("summarise", prompt="x")]))
        qtbot.addWidget(window)
        window.store = store
        install = install_inspector(window)
        install.panel.show_step("fetch")
        assert isinstance(field(install.panel, "config.arguments.mode").input, QComboBox)
        install.panel.show_step("summarise")
        widget = field(install.panel, "config.model").input
        completer = next(completer for completer in install.panel.completers if completer.widget is widget)
        assert isinstance(widget, QLineEdit)
        QTest.keyClicks(widget, "{{steps.fetch.result.")
        assert completer.candidates() == ["steps.fetch.result.hits", "steps.fetch.result.total"]
        install.panel.show_step(None)
    finally:
        store.close()
