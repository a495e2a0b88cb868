"""Tests of workflow validation: one test per check, plus whole generated workflows."""

from __future__ import annotations

from typing import Any

import pytest
from workflow_builders import CATALOG, for_each, generated_workflow, human, llm, lua, mcp, workflow

from studio.model.validation import Finding, ToolCatalog, has_errors, validate_workflow
from studio.model.workflow import Workflow


def codes(findings: list[Finding]) -> list[str]:
    return [finding.code for finding in findings]


def single(findings: list[Finding], code: str) -> Finding:
    """Return the one finding with ``code``, failing with the full list if there is not exactly one."""
    matching = [finding for finding in findings if finding.code == code]
    assert len(matching) == 1, f"expected one '{code}' finding, got: {findings}"
    return matching[0]


def check(document: Workflow, *, catalog: ToolCatalog | None = None) -> list[Finding]:
    return validate_workflow(document, catalog=catalog)


def test_valid_chain_has_no_findings() -> None:
    document = workflow(
        [mcp("fetch"), llm("write", "Use {{steps.fetch.result.rows[0]}}"), human("approve")],
        [("write", "approve")],
    )
    assert check(document, catalog=CATALOG) == []


def test_empty_workflow_warns() -> None:
    findings = check(workflow([]))
    finding = single(findings, "empty-workflow")
    assert finding.severity == "warning"
    assert finding.step_id is None
    assert "'test'" in finding.message
    assert not has_errors(findings)


def test_duplicate_id_in_body_is_found() -> None:
    document = workflow([llm("a"), for_each("loop", [1], [llm("a"), llm("b", "{{item}}")], [("a", "b")])])
    finding = single(check(document), "duplicate-id")
    assert finding.step_id == "a"
    assert finding.field_path == "id"
    assert "steps[0]" in finding.message
    assert "steps[1].config.steps[0]" in finding.message


def test_cycle_of_edges_names_steps_in_order() -> None:
    document = workflow([llm("a"), llm("b"), llm("c")], [("a", "b"), ("b", "c"), ("c", "a")])
    finding = single(check(document), "cycle")
    assert finding.step_id == "a"
    assert finding.field_path is None
    assert "'a' → 'b' → 'c' → 'a'" in finding.message


def test_reference_closing_cycle_is_named() -> None:
    document = workflow([llm("a", "Improve {{steps.c.result}}"), llm("b"), llm("c")], [("a", "b"), ("b", "c")])
    finding = single(check(document), "cycle")
    assert finding.step_id == "a"
    assert finding.field_path == "config.prompt"
    assert "'a' → 'b' → 'c' → 'a'" in finding.message
    assert "'a' reads 'c' in config.prompt" in finding.message


def test_self_reference_is_a_cycle() -> None:
    finding = single(check(workflow([llm("a", "again {{steps.a.result}}")])), "cycle")
    assert finding.step_id == "a"
    assert finding.field_path == "config.prompt"
    assert "reads its own result" in finding.message


def test_two_cycles_are_reported_separately() -> None:
    document = workflow(
        [llm("a"), llm("b"), llm("c"), llm("d")],
        [("a", "b"), ("b", "a"), ("b", "c"), ("c", "d"), ("d", "c")],
    )
    findings = [finding for finding in check(document) if finding.code == "cycle"]
    assert [finding.step_id for finding in findings] == ["a", "c"]


def test_dangling_edge_suggests_id() -> None:
    document = workflow([llm("fetch"), llm("write")], [("fetch", "wirte")])
    finding = single(check(document), "dangling-edge")
    assert finding.step_id is None
    assert finding.field_path == "edges[0]"
    assert "'wirte'" in finding.message
    assert "Did you mean 'write'?" in finding.message


def test_edge_into_body_is_dangling() -> None:
    document = workflow([llm("a"), for_each("loop", [1], [llm("inner", "{{item}}")])], [("a", "inner")])
    finding = single(check(document), "dangling-edge")
    assert finding.field_path == "edges[0]"
    assert "the body of for_each 'loop'" in finding.message


def test_dangling_body_edge_is_placed_on_for_each() -> None:
    document = workflow([for_each("loop", [1], [llm("inner", "{{item}}")], [("inner", "ghost")])])
    finding = single(check(document), "dangling-edge")
    assert finding.step_id == "loop"
    assert finding.field_path == "config.edges[0]"
    assert "'ghost'" in finding.message


def test_self_edge_is_rejected() -> None:
    finding = single(check(workflow([llm("a")], [("a", "a")])), "self-edge")
    assert finding.severity == "error"
    assert finding.field_path == "edges[0]"
    assert "'a'" in finding.message


def test_duplicate_edge_warns() -> None:
    finding = single(check(workflow([llm("a"), llm("b")], [("a", "b"), ("a", "b")])), "duplicate-edge")
    assert finding.severity == "warning"
    assert finding.field_path == "edges[1]"
    assert "'a'" in finding.message
    assert "'b'" in finding.message


@pytest.mark.parametrize(
    ("step", "field_path"),
    [
        (mcp("x", tool=""), "config.tool"),
        (mcp("x", instance_id=None), "config.instance_id"),
        (llm("x", model="", connection_id="work-openai"), "config.model"),
        (llm("x", "   "), "config.prompt"),
        (human("x", ""), "config.title"),
        (lua("x", source=""), "config.source"),
        (for_each("x", None, [llm("inner", "{{item}}")]), "config.items"),
        (for_each("x", [1, 2], []), "config.steps"),
    ],
)
def test_missing_config_is_named(step: dict[str, Any], field_path: str) -> None:
    finding = single(check(workflow([step])), "missing-config")
    assert finding.step_id == "x"
    assert finding.field_path == field_path
    assert "'x'" in finding.message
    assert field_path in finding.message


def test_llm_without_connection_needs_no_model() -> None:
    document = workflow([llm("x", model="")])
    assert check(document) == []


def test_llm_connection_without_model_is_named() -> None:
    finding = single(check(workflow([llm("x", model=" ", connection_id="work-openai")])), "missing-config")
    assert "'work-openai'" in finding.message
    assert "clear config.connection_id" in finding.message


def test_server_url_alone_is_enough() -> None:
    document = workflow([mcp("x", "lookup", instance_id=None, server_url="https://tools.invalid/mcp",
                             arguments={"key": "k"})])
    assert check(document, catalog=CATALOG) == []


@pytest.mark.parametrize("items", ["plain text", "rows: {{input.topic}}", "{{index}}", 5, {"a": 1}])
def test_items_must_be_list_or_one_template(items: Any) -> None:
    document = workflow([for_each("x", items, [llm("inner", "{{item}}")])])
    finding = single(check(document), "invalid-items")
    assert finding.field_path == "config.items"
    assert "not a list" in finding.message


def test_unknown_output_step_lists_body() -> None:
    document = workflow([for_each("x", [1], [llm("first", "{{item}}"), llm("second")], [("first", "second")],
                                  output="secnd")])
    finding = single(check(document), "unknown-output-step")
    assert finding.step_id == "x"
    assert finding.field_path == "config.output"
    assert "'secnd'" in finding.message
    assert "Did you mean 'second'?" in finding.message


def test_two_sinks_need_output() -> None:
    document = workflow([for_each("x", [1], [llm("a", "{{item}}"), llm("b", "{{steps.a.result}}"),
                                              llm("c", "{{steps.a.result}}")])])
    finding = single(check(document), "ambiguous-output")
    assert finding.field_path == "config.output"
    assert "'b', 'c'" in finding.message
    explicit = workflow([for_each("x", [1], [llm("a", "{{item}}"), llm("b", "{{steps.a.result}}"),
                                              llm("c", "{{steps.a.result}}")], output="c")])
    assert "ambiguous-output" not in codes(check(explicit))


def test_template_syntax_error_has_field_path() -> None:
    document = workflow([mcp("x", arguments={"query": "{{steps.fetch}}", "nested": {"deep": ["{{oops}}"]}})])
    findings = [finding for finding in check(document) if finding.code == "template-syntax"]
    assert [finding.field_path for finding in findings] == ["config.arguments.query", "config.arguments.nested.deep[0]"]
    assert "{{steps.fetch}}" in findings[0].message
    assert "{{oops}}" in findings[1].message


def test_code_in_template_is_a_syntax_error() -> None:
    finding = single(check(workflow([llm("x", "{{__import__('os')}}")])), "template-syntax")
    assert finding.field_path == "config.prompt"
    assert "__import__" in finding.message


def test_unknown_step_reference_suggests_id() -> None:
    document = workflow([mcp("fetch"), llm("write", "{{steps.fetchh.result}}")], [("fetch", "write")])
    finding = single(check(document), "unknown-step-ref")
    assert finding.step_id == "write"
    assert finding.field_path == "config.prompt"
    assert "'fetchh'" in finding.message
    assert "Did you mean 'fetch'?" in finding.message


def test_reference_implies_edge() -> None:
    document = workflow([mcp("fetch"), llm("write", "{{steps.fetch.result}}")])
    assert check(document, catalog=CATALOG) == []


def test_unknown_input_is_named() -> None:
    finding = single(check(workflow([llm("x", "About {{input.topc}}")])), "unknown-input")
    assert finding.step_id == "x"
    assert finding.field_path == "config.prompt"
    assert "'topc'" in finding.message
    assert "Did you mean 'topic'?" in finding.message


def test_inputs_allowed_by_additional_properties() -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": True}
    assert check(workflow([llm("x", "About {{input.anything}}")], input_schema=schema)) == []


def test_item_outside_for_each_is_rejected() -> None:
    findings = check(workflow([human("x", "Check {{item.name}} #{{index}}")]))
    assert codes(findings) == ["item-outside-for-each", "item-outside-for-each"]
    assert [finding.step_id for finding in findings] == ["x", "x"]
    assert [finding.field_path for finding in findings] == ["config.title", "config.title"]
    assert "{{item.name}}" in findings[0].message
    assert "{{index}}" in findings[1].message


def test_item_in_for_each_items_needs_outer_body() -> None:
    # A for_each's items are rendered in the scope around it, where there is no item.
    document = workflow([for_each("x", "{{item.rows}}", [llm("inner", "{{item}}")])])
    finding = single(check(document), "item-outside-for-each")
    assert finding.step_id == "x"
    assert finding.field_path == "config.items"


def test_body_read_of_downstream_step_is_cycle() -> None:
    # The body's read implies late -> loop, which closes a cycle with the edge loop -> late.
    body = [llm("inner", "{{item}} with {{steps.late.result}}")]
    document = workflow([llm("early"), for_each("loop", "{{steps.early.result}}", body), llm("late")],
                        [("loop", "late")])
    finding = single(check(document), "cycle")
    assert "'loop'" in finding.message
    assert "'late'" in finding.message
    assert "'inner'" in finding.message


def test_body_read_implies_edge_to_for_each() -> None:
    body = [llm("inner", "{{item}} with {{steps.side.result}}")]
    document = workflow([llm("rows"), llm("side"), for_each("loop", "{{steps.rows.result}}", body)])
    assert check(document) == []


def test_body_read_of_upstream_outer_step_is_valid() -> None:
    body = [llm("inner", "{{item}} with {{steps.early.result}}")]
    document = workflow([llm("early"), llm("rows"), for_each("loop", "{{steps.rows.result}}", body)],
                        [("early", "rows")])
    assert check(document) == []


def test_nested_body_reads_middle_level() -> None:
    inner_body = [llm("deep", "{{item}} {{steps.mid.result}} {{steps.top.result}}")]
    middle_body = [llm("mid", "{{item}}"), for_each("inner", "{{steps.mid.result}}", inner_body)]
    document = workflow([llm("top"), for_each("outer", "{{steps.top.result}}", middle_body)])
    assert check(document) == []


def test_outer_step_cannot_read_body_step() -> None:
    document = workflow([for_each("loop", [1], [llm("inner", "{{item}}")]), llm("after", "{{steps.inner.result}}")],
                        [("loop", "after")])
    finding = single(check(document), "for-each-scope")
    assert finding.step_id == "after"
    assert finding.field_path == "config.prompt"
    assert "{{steps.loop.result.items}}" in finding.message


def test_sibling_bodies_cannot_read_each_other() -> None:
    document = workflow([
        for_each("one", [1], [llm("a", "{{item}}")]),
        for_each("two", [1], [llm("b", "{{steps.a.result}}")]),
    ], [("one", "two")])
    finding = single(check(document), "for-each-scope")
    assert finding.step_id == "b"
    assert "'a' is inside the body of for_each 'one'" in finding.message


def test_body_cannot_read_own_for_each() -> None:
    document = workflow([for_each("loop", [1], [llm("inner", "{{steps.loop.result}}")])])
    finding = single(check(document), "for-each-scope")
    assert finding.step_id == "inner"
    assert "'loop'" in finding.message


def test_items_cannot_come_from_own_body() -> None:
    document = workflow([for_each("loop", "{{steps.inner.result}}", [llm("inner", "{{item}}")])])
    finding = single(check(document), "for-each-scope")
    assert finding.step_id == "loop"
    assert finding.field_path == "config.items"
    assert "cannot come from its own body" in finding.message


def test_invalid_input_schema_has_path() -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integr"}}}
    finding = single(check(workflow([llm("x")], input_schema=schema)), "invalid-input-schema")
    assert finding.step_id is None
    assert finding.field_path == "input_schema.properties.age.type"
    assert "'integr'" in finding.message


def test_input_schema_must_be_object() -> None:
    finding = single(check(workflow([llm("x")], input_schema={"type": "array"})), "invalid-input-schema")
    assert finding.field_path == "input_schema.type"
    assert '"array"' in finding.message
    assert '"type": "object"' in finding.message


@pytest.mark.parametrize("declared", ["http://example.invalid/schema", 5])
def test_unknown_schema_draft_is_rejected(declared: Any) -> None:
    schema = {"$schema": declared, "type": "object", "properties": {"topic": {}}}
    finding = single(check(workflow([llm("x")], input_schema=schema)), "invalid-input-schema")
    assert finding.field_path == "input_schema.$schema"
    assert str(declared) in finding.message


def test_known_schema_draft_and_type_list_are_accepted() -> None:
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": ["object", "null"],
              "properties": {"topic": {"type": "string"}}}
    assert check(workflow([llm("x")], input_schema=schema)) == []


def test_invalid_output_schema_has_path() -> None:
    document = workflow([llm("x", output_schema={"type": "object", "required": "name"})])
    finding = single(check(document), "invalid-output-schema")
    assert finding.step_id == "x"
    assert finding.field_path == "config.output_schema.required"
    assert "'name'" in finding.message


def test_invalid_lua_output_schema_has_path() -> None:
    step = lua("x")
    step["config"]["output_schema"] = {"type": "object", "properties": {"n": {"type": "nope"}}}
    finding = single(check(workflow([step])), "invalid-output-schema")
    assert finding.step_id == "x"
    assert finding.field_path.startswith("config.output_schema.properties")


@pytest.mark.parametrize(("name", "reason"), [("end", "Lua keyword"), ("2rows", "not a valid Lua identifier"),
                                              ("my-rows", "not a valid Lua identifier")])
def test_lua_input_names_are_identifiers(name: str, reason: str) -> None:
    finding = single(check(workflow([lua("x", {name: 1, "good_name": 2})])), "lua-input-name")
    assert finding.field_path == f"config.inputs.{name}"
    assert f"'{name}'" in finding.message
    assert reason in finding.message


def test_disconnected_group_warns() -> None:
    document = workflow([llm("a"), llm("b"), llm("c"), llm("lonely"), llm("d")],
                        [("a", "b"), ("b", "c"), ("lonely", "d")])
    finding = single(check(document), "disconnected")
    assert finding.severity == "warning"
    assert finding.step_id == "lonely"
    assert "'lonely', 'd'" in finding.message
    assert "'a'" in finding.message


def test_single_step_is_not_disconnected() -> None:
    assert check(workflow([llm("a")])) == []


def test_unknown_tool_suggests_name() -> None:
    finding = single(check(workflow([mcp("x", "serch")]), catalog=CATALOG), "unknown-tool")
    assert finding.step_id == "x"
    assert finding.field_path == "config.tool"
    assert "'serch'" in finding.message
    assert "Did you mean 'search'?" in finding.message


def test_unknown_argument_is_rejected_for_strict_tool() -> None:
    document = workflow([mcp("x", arguments={"query": "q", "limt": 3})])
    finding = single(check(document, catalog=CATALOG), "tool-arguments")
    assert finding.severity == "error"
    assert finding.field_path == "config.arguments.limt"
    assert "Did you mean 'limit'?" in finding.message


def test_unknown_argument_warns_for_open_tool() -> None:
    document = workflow([mcp("x", "read_file", arguments={"path": "/tmp", "pth": 1})])
    finding = single(check(document, catalog=CATALOG), "tool-arguments")
    assert finding.severity == "warning"
    assert finding.field_path == "config.arguments.pth"


def test_missing_required_argument_is_named() -> None:
    finding = single(check(workflow([mcp("x", arguments={"limit": 2})]), catalog=CATALOG), "tool-arguments")
    assert finding.field_path == "config.arguments"
    assert "'query'" in finding.message


def test_wrong_literal_type_is_named() -> None:
    document = workflow([mcp("x", arguments={"query": "q", "limit": "ten", "mode": "slow"})])
    findings = [finding for finding in check(document, catalog=CATALOG) if finding.code == "tool-arguments"]
    assert [finding.field_path for finding in findings] == ["config.arguments.limit", "config.arguments.mode"]
    assert '"ten"' in findings[0].message
    assert '"integer"' in findings[0].message
    assert '"slow"' in findings[1].message


def test_template_arguments_are_not_type_checked() -> None:
    document = workflow([mcp("x", arguments={"query": "{{input.topic}}", "limit": "{{input.topic}}"})])
    assert check(document, catalog=CATALOG) == []


def test_tool_schema_with_broken_ref_is_skipped() -> None:
    schema = {"type": "object", "properties": {"query": {"$ref": "#/$defs/missing"}}}
    catalog = ToolCatalog(instances={"fs": {"search": schema}})
    assert check(workflow([mcp("x", arguments={"query": 1})]), catalog=catalog) == []


def test_invalid_tool_schema_still_checks_names() -> None:
    schema = {"type": "object", "properties": {"query": {"type": "strin"}}, "required": ["query"]}
    catalog = ToolCatalog(instances={"fs": {"search": schema}})
    finding = single(check(workflow([mcp("x", arguments={})]), catalog=catalog), "tool-arguments")
    assert finding.field_path == "config.arguments"
    assert "'query'" in finding.message


def test_unknown_server_skips_tool_checks() -> None:
    document = workflow([mcp("x", "anything", instance_id="other", arguments={"whatever": 1})])
    assert check(document, catalog=CATALOG) == []


def test_has_errors_ignores_warnings() -> None:
    assert not has_errors([Finding("disconnected", "warning", "m")])
    assert has_errors([Finding("disconnected", "warning", "m"), Finding("cycle", "error", "m")])


def test_generated_1000_steps_are_valid() -> None:
    document = generated_workflow(1000)
    assert sum(1 for _ in document.iter_steps()) == 1000
    assert check(document, catalog=CATALOG) == []
