"""Tests of the pure editor edits: find usages, rename with reference rewriting, new steps and fragments."""

from __future__ import annotations

import json
from typing import Any

import pytest
from workflow_builders import for_each, human, llm, lua, mcp, workflow

from studio.model.document import workflow_from_data, workflow_from_json, workflow_to_json
from studio.model.edits import (
    EditError,
    Fragment,
    Usage,
    copy_fragment,
    find_usages,
    new_step,
    paste_fragment,
    rename_step,
)
from studio.model.validation import validate_workflow
from studio.model.workflow import STEP_TYPES, ForEachStep, Group, Workflow, template_fields


def every_field_workflow() -> Workflow:
    """A workflow where every templated field of every step type reads step ``src``, plus body steps."""
    reader_human = human("ask", title="Check {{steps.src.result.title}}")
    reader_human["config"]["instructions"] = "Result: {{ steps.src.result }} (see above)"
    reader_human["config"]["fields"] = [{"name": "note", "default": "{{steps.src.result.note}}"}]
    return workflow(
        [
            lua("src"),
            mcp("call", arguments={"query": "{{steps.src.result}}", "nested": {"list": ["a {{steps.src.result.x}} b"]}}),
            llm("write", prompt="Summarise {{steps.src.result.items[0].text}} and {{steps.other.result}}",
                system_prompt="{{steps.src.result}}", model="{{steps.src.result.model}}"),
            reader_human,
            lua("calc", inputs={"value": "{{steps.src.result}}", "text": "n={{steps.src.result.n}}"},
                source="-- {{steps.src.result}} stays in code\nreturn value"),
            for_each("loop", "{{steps.src.result.rows}}",
                     [lua("inner", inputs={"row": "{{item}}", "base": "{{steps.src.result}}"}),
                      lua("after", inputs={"x": "{{steps.inner.result}}"})],
                     body_edges=[("inner", "after")], output="inner"),
            lua("other"),
        ],
        edges=[("src", "call"), ("call", "write")],
        groups=[{"title": "Start", "step_ids": ["src", "call"]}],
    )


def templated_values(workflow_: Workflow) -> list[str]:
    return [value for step in workflow_.iter_steps() for _path, value in template_fields(step) if isinstance(value, str)]


# -- find usages ----------------------------------------------------------------------------


def test_find_usages_lists_every_field() -> None:
    usages = find_usages(every_field_workflow(), "src")
    assert Usage("call", "config.arguments.query") in usages
    assert Usage("call", "config.arguments.nested.list[0]") in usages
    assert Usage("write", "config.prompt") in usages
    assert Usage("write", "config.system_prompt") in usages
    assert Usage("write", "config.model") in usages
    assert Usage("ask", "config.title") in usages
    assert Usage("ask", "config.instructions") in usages
    assert Usage("ask", "config.fields[0].default") in usages
    assert Usage("calc", "config.inputs.value") in usages
    assert Usage("calc", "config.inputs.text") in usages
    assert Usage("loop", "config.items") in usages
    assert Usage("inner", "config.inputs.base") in usages
    assert len(usages) == 12


def test_find_usages_includes_for_each_output() -> None:
    assert find_usages(every_field_workflow(), "inner") == [Usage("loop", "config.output"), Usage("after", "config.inputs.x")]


def test_find_usages_skips_lua_source_and_unknown() -> None:
    usages = find_usages(every_field_workflow(), "src")
    assert all(usage.field_path != "config.source" for usage in usages)
    assert find_usages(every_field_workflow(), "absent") == []


def test_find_usages_survives_syntax_errors() -> None:
    broken = workflow([lua("a"), lua("b", inputs={"v": "{{steps.a.result}} and {{nonsense here}}"})])
    assert find_usages(broken, "a") == [Usage("b", "config.inputs.v")]


# -- rename ---------------------------------------------------------------------------------


def test_rename_rewrites_every_reference() -> None:
    original = every_field_workflow()
    renamed = rename_step(original, "src", "source")
    assert find_usages(renamed, "src") == []
    assert len(find_usages(renamed, "source")) == 12
    assert all("steps.src." not in value for value in templated_values(renamed))
    assert renamed.steps[0].id == "source"


def test_rename_keeps_text_paths_and_spacing() -> None:
    renamed = rename_step(every_field_workflow(), "src", "source")
    write = renamed.step("write")
    assert write.type == "llm_call"
    assert write.config.prompt == "Summarise {{steps.source.result.items[0].text}} and {{steps.other.result}}"
    ask = renamed.step("ask")
    assert ask.type == "human_task"
    assert ask.config.instructions == "Result: {{ steps.source.result }} (see above)"
    call = renamed.step("call")
    assert call.type == "mcp_call"
    assert call.config.arguments == {"query": "{{steps.source.result}}",
                                     "nested": {"list": ["a {{steps.source.result.x}} b"]}}


def test_rename_leaves_lua_source_alone() -> None:
    calc = rename_step(every_field_workflow(), "src", "source").step("calc")
    assert calc.type == "lua_script"
    assert calc.config.source.startswith("-- {{steps.src.result}} stays in code")
    assert calc.config.inputs["text"] == "n={{steps.source.result.n}}"


def test_rename_rewrites_edges_groups_and_output() -> None:
    renamed = rename_step(every_field_workflow(), "src", "source")
    assert [(edge.source, edge.target) for edge in renamed.edges] == [("source", "call"), ("call", "write")]
    assert renamed.groups[0].step_ids == ["source", "call"]
    body = rename_step(every_field_workflow(), "inner", "first")
    loop = body.step("loop")
    assert isinstance(loop, ForEachStep)
    assert loop.config.output == "first"
    assert [(edge.source, edge.target) for edge in loop.config.edges] == [("first", "after")]
    after = body.step("after")
    assert after.type == "lua_script"
    assert after.config.inputs == {"x": "{{steps.first.result}}"}


def test_rename_result_validates_like_original() -> None:
    original = every_field_workflow()
    renamed = rename_step(original, "src", "source")
    before = sorted(finding.code for finding in validate_workflow(original))
    after = sorted(finding.code for finding in validate_workflow(renamed))
    assert before == after


def test_rename_does_not_change_input() -> None:
    original = every_field_workflow()
    text = workflow_to_json(original)
    rename_step(original, "src", "source")
    assert workflow_to_json(original) == text


def test_rename_keeps_bad_templates_unchanged() -> None:
    broken = workflow([lua("a"), lua("b", inputs={"v": "{{steps.a.result}} and {{ steps.a.oops }}"})])
    renamed = rename_step(broken, "a", "z")
    step = renamed.step("b")
    assert step.type == "lua_script"
    assert step.config.inputs["v"] == "{{steps.z.result}} and {{ steps.a.oops }}"


def test_rename_ignores_similar_ids() -> None:
    similar = workflow([lua("a"), lua("ab"), lua("c", inputs={"v": "{{steps.ab.result}}{{steps.a.result}}"})])
    step = rename_step(similar, "a", "x").step("c")
    assert step.type == "lua_script"
    assert step.config.inputs["v"] == "{{steps.ab.result}}{{steps.x.result}}"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("absent", "fine", "'absent'"),
        ("src", "Bad Id", "'Bad Id'"),
        ("src", "", "''"),
        ("src", "x" * 65, "'" + "x" * 65 + "'"),
        ("src", "-lead", "'-lead'"),
        ("src", "call", "'call' is already taken"),
        ("src", "inner", "'inner' is already taken"),
    ],
)
def test_rename_rejects_bad_ids(old: str, new: str, expected: str) -> None:
    with pytest.raises(EditError) as caught:
        rename_step(every_field_workflow(), old, new)
    assert expected in str(caught.value)


def test_rename_to_same_id_is_a_copy() -> None:
    original = every_field_workflow()
    same = rename_step(original, "src", "src")
    assert same == original
    assert same is not original


# -- new steps ------------------------------------------------------------------------------


@pytest.mark.parametrize("step_type", STEP_TYPES)
def test_new_step_has_unique_id_and_valid_config(step_type: str) -> None:
    base = workflow([lua(step_type.replace("_", "-"))])
    step = new_step(step_type, base)
    assert step.type == step_type
    assert step.id == step_type.replace("_", "-") + "-2"
    data = json.loads(workflow_to_json(base))
    data["steps"].append(json.loads(step.model_dump_json(exclude_defaults=True)) | {"type": step_type})
    assert workflow_from_data(data).step(step.id).type == step_type


def test_new_step_id_from_title_and_tool() -> None:
    base = workflow([lua("fetch-contacts")])
    assert new_step("lua_script", base, title="Fetch Contacts!").id == "fetch-contacts-2"
    step = new_step("mcp_call", base, tool="read_file")
    assert step.id == "read_file"
    assert step.type == "mcp_call"
    assert step.config.tool == "read_file"
    assert new_step("llm_call", base, title="   ").id == "step"


def test_new_step_rejects_bad_input() -> None:
    with pytest.raises(EditError, match="unknown step type 'teleport'"):
        new_step("teleport", workflow([]))
    with pytest.raises(EditError, match=r"tool \('read_file'\) only applies to mcp_call"):
        new_step("lua_script", workflow([]), tool="read_file")


# -- fragments ------------------------------------------------------------------------------


def fragment_workflow() -> Workflow:
    return workflow(
        [
            {**lua("fetch"), "position": {"x": 100, "y": 50}},
            {**lua("parse", inputs={"raw": "{{steps.fetch.result}}", "cfg": "{{steps.config.result}}"}),
             "position": {"x": 300, "y": 80}},
            {**lua("config"), "position": {"x": 0, "y": 0}},
            {**for_each("loop", "{{steps.parse.result}}",
                        [lua("each", inputs={"v": "{{item}}", "p": "{{steps.parse.result}}"})], output="each"),
             "position": {"x": 500, "y": 50}},
        ],
        edges=[("fetch", "parse"), ("config", "parse"), ("parse", "loop")],
        notes=[{"id": "n1", "text": "hello", "position": {"x": 5, "y": 6}}],
    )


def test_copy_takes_edges_among_selection() -> None:
    fragment = copy_fragment(fragment_workflow(), ["fetch", "parse", "loop"], note_ids=["n1"])
    assert fragment.step_ids() == ["fetch", "parse", "loop"]
    assert [(edge.source, edge.target) for edge in fragment.edges] == [("fetch", "parse"), ("parse", "loop")]
    assert [note.text for note in fragment.notes] == ["hello"]


def test_copy_drops_body_steps_of_copied_loop() -> None:
    fragment = copy_fragment(fragment_workflow(), ["each", "loop"])
    assert fragment.step_ids() == ["loop"]


def test_copy_rejects_unknown_ids() -> None:
    with pytest.raises(EditError, match="cannot copy step 'ghost'"):
        copy_fragment(fragment_workflow(), ["fetch", "ghost"])
    with pytest.raises(EditError, match="cannot copy note 'n9'"):
        copy_fragment(fragment_workflow(), ["fetch"], note_ids=["n9"])


def test_paste_gives_fresh_ids_and_rewrites() -> None:
    original = fragment_workflow()
    fragment = copy_fragment(original, ["fetch", "parse", "loop"], note_ids=["n1"])
    pasted, id_map = paste_fragment(original, fragment, offset=(10.0, 20.0))
    assert id_map == {"fetch": "fetch-2", "parse": "parse-2", "loop": "loop-2", "each": "each-2"}
    parse = pasted.step("parse-2")
    assert parse.type == "lua_script"
    assert parse.config.inputs == {"raw": "{{steps.fetch-2.result}}", "cfg": "{{steps.config.result}}"}
    loop = pasted.step("loop-2")
    assert isinstance(loop, ForEachStep)
    assert loop.config.items == "{{steps.parse-2.result}}"
    assert loop.config.output == "each-2"
    each = loop.config.steps[0]
    assert each.type == "lua_script"
    assert each.config.inputs["p"] == "{{steps.parse-2.result}}"
    new_edges = [(edge.source, edge.target) for edge in pasted.edges][3:]
    assert new_edges == [("fetch-2", "parse-2"), ("parse-2", "loop-2")]
    assert parse.position is not None
    assert (parse.position.x, parse.position.y) == (310.0, 100.0)
    assert len(pasted.notes) == 2
    assert pasted.notes[1].id != "n1"
    assert (pasted.notes[1].position.x, pasted.notes[1].position.y) == (15.0, 26.0)
    assert [step.id for step in original.steps] == ["fetch", "parse", "config", "loop"]
    assert not [finding for finding in validate_workflow(pasted) if finding.severity == "error"]


def test_paste_twice_gives_new_ids_each_time() -> None:
    original = fragment_workflow()
    fragment = copy_fragment(original, ["fetch"])
    once, _ = paste_fragment(original, fragment, offset=(0, 0))
    twice, id_map = paste_fragment(once, fragment, offset=(0, 0))
    assert id_map == {"fetch": "fetch-3"}
    assert [step.id for step in twice.steps][-2:] == ["fetch-2", "fetch-3"]


def test_paste_into_for_each_body() -> None:
    original = fragment_workflow()
    fragment = copy_fragment(original, ["config"])
    pasted, id_map = paste_fragment(original, fragment, offset=(0, 0), container_id="loop")
    loop = pasted.step("loop")
    assert isinstance(loop, ForEachStep)
    assert [step.id for step in loop.config.steps] == ["each", id_map["config"]]


def test_paste_rejects_bad_container() -> None:
    fragment = copy_fragment(fragment_workflow(), ["config"])
    with pytest.raises(EditError, match="'fetch': it is a lua_script step, not a for_each"):
        paste_fragment(fragment_workflow(), fragment, offset=(0, 0), container_id="fetch")
    with pytest.raises(EditError, match="'ghost'"):
        paste_fragment(fragment_workflow(), fragment, offset=(0, 0), container_id="ghost")


def test_clipboard_text_round_trip() -> None:
    fragment = copy_fragment(fragment_workflow(), ["fetch", "parse", "loop"], note_ids=["n1"])
    text = fragment.to_clipboard_text()
    assert json.loads(text)["kind"] == "workflow-studio/fragment"
    assert Fragment.from_clipboard_text(text) == fragment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain words", "not JSON"),
        ("[1, 2]", "not a workflow fragment"),
        ('{"kind": "something-else"}', "not a workflow fragment"),
        ('{"kind": "workflow-studio/fragment", "schema_version": 99}', "schema_version 99"),
        ('{"kind": "workflow-studio/fragment", "schema_version": 1, "steps": [{"id": "x", "type": "teleport"}]}',
         "invalid at steps"),
    ],
)
def test_clipboard_rejects_bad_text(text: str, expected: str) -> None:
    with pytest.raises(EditError) as caught:
        Fragment.from_clipboard_text(text)
    assert expected in str(caught.value)


# -- model additions ------------------------------------------------------------------------


def test_document_without_new_fields_loads() -> None:
    data: dict[str, Any] = {"schema_version": 1, "steps": [{"id": "a", "type": "lua_script"}]}
    loaded = workflow_from_data(data)
    assert loaded.groups == []
    assert loaded.steps[0].layout_pinned is False
    assert "groups" not in workflow_to_json(loaded)
    assert "layout_pinned" not in workflow_to_json(loaded)


def test_groups_and_pins_round_trip() -> None:
    data: dict[str, Any] = {
        "schema_version": 1,
        "steps": [{"id": "a", "type": "lua_script", "layout_pinned": True}],
        "groups": [{"id": "g1", "title": "Input", "step_ids": ["a"]}],
        "notes": [{"id": "n", "text": "t", "width": 300, "height": 90}],
    }
    loaded = workflow_from_json(workflow_to_json(workflow_from_data(data)))
    assert loaded.steps[0].layout_pinned is True
    assert loaded.groups == [Group(id="g1", title="Input", step_ids=["a"])]
    assert (loaded.notes[0].width, loaded.notes[0].height) == (300.0, 90.0)
