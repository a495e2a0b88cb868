"""Tests of step output shapes and template completion candidates."""

from __future__ import annotations

from typing import Any

import pytest
from workflow_builders import for_each, human, llm, lua, mcp, workflow

from studio.model.output_shapes import (
    DependencyIndex,
    Shape,
    ToolOutputSchemas,
    completions,
    shape_from_schema,
    shape_from_value,
    step_shape,
)

REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "description": "headline"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "author": {"$ref": "#/$defs/person"},
    },
    "$defs": {"person": {"type": "object", "properties": {"name": {"type": "string"}}}},
}
ROWS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"rows": {"type": "array", "items": {"type": "object", "properties": {"email": {"type": "string"}}}}},
}
OUTPUTS = ToolOutputSchemas(instances={"fs": {"search": ROWS_SCHEMA}})


def texts(prefix: str, step_id: str, document: Any, **options: Any) -> list[str]:
    return [candidate.text for candidate in completions(document, step_id, prefix, **options)]


def pipeline() -> Any:
    """fetch -> summarise -> loop(body) -> late, with 'approve' independent and 'after' downstream of late."""
    return workflow(
        [
            mcp("fetch"),
            llm("summarise", prompt="{{steps.fetch.result}}", output_schema=REPORT_SCHEMA),
            for_each("loop", "{{steps.fetch.result.rows}}", [lua("body", {"x": "{{item.email}}"})]),
            human("approve"),
            llm("late", prompt="{{steps.loop.result}} {{steps.summarise.result}}"),
            llm("after", prompt="{{steps.late.result}}"),
        ],
        [("fetch", "loop")],
    )


# -- shapes ---------------------------------------------------------------------------------------


def test_schema_shape_follows_local_ref() -> None:
    shape = shape_from_schema(REPORT_SCHEMA)
    assert shape.kind == "object"
    assert shape.child("title").description == "headline"
    assert shape.child("tags").kind == "array"
    assert shape.child("tags").child(0).kind == "string"
    assert shape.child("author").child("name").kind == "string"


def test_schema_shape_merges_any_of_branches() -> None:
    schema = {"anyOf": [{"type": "object", "properties": {"a": {"type": "string"}}},
                        {"type": "object", "properties": {"b": {"type": "integer"}}}]}
    shape = shape_from_schema(schema)
    assert set(shape.properties) == {"a", "b"}


def test_recursive_ref_stops_at_depth_limit() -> None:
    schema = {"type": "object", "properties": {"next": {"$ref": "#"}}}
    shape = shape_from_schema(schema)
    assert shape.child("next").child("next").kind == "object"


def test_value_shape_merges_list_items() -> None:
    shape = shape_from_value({"rows": [{"a": 1}, {"b": "x"}], "ok": True})
    assert shape.child("rows").child(0).child("a").kind == "integer"
    assert shape.child("rows").child(0).child("b").kind == "string"
    assert shape.child("ok").kind == "boolean"


def test_llm_without_schema_is_text() -> None:
    document = workflow([llm("a")])
    assert step_shape(document.step("a")).kind == "string"


def test_lua_shape_comes_from_output_schema() -> None:
    declared = lua("score")
    declared["config"]["output_schema"] = {
        "type": "object",
        "properties": {"total": {"type": "number"}, "rows": {"type": "array", "items": {"type": "string"}}},
    }
    document = workflow([declared, lua("plain")])

    shape = step_shape(document.step("score"))

    assert shape.child("total").kind == "number"
    assert shape.child("rows").child(0).kind == "string"
    assert step_shape(document.step("plain")).kind == "any"


def test_mcp_shape_comes_from_output_schemas() -> None:
    document = workflow([mcp("fetch")])
    assert step_shape(document.step("fetch")).kind == "any"
    shape = step_shape(document.step("fetch"), schemas=OUTPUTS)
    assert shape.child("rows").child(0).child("email").kind == "string"


def test_human_task_shape_lists_form_fields() -> None:
    step = human("approve")
    step["config"]["fields"] = [{"name": "comment", "type": "multiline"}, {"name": "score", "type": "number"}]
    shape = step_shape(workflow([step]).step("approve"))
    assert shape.child("decision").kind == "string"
    assert shape.child("values").child("comment").kind == "string"
    assert shape.child("values").child("score").kind == "number"


def test_for_each_shape_wraps_body_output() -> None:
    document = pipeline()
    shape = step_shape(document.step("loop"))
    assert shape.child("items").kind == "array"
    assert shape.child("errors").kind == "array"


def test_lua_shape_comes_only_from_last_run() -> None:
    document = workflow([lua("script")])
    assert step_shape(document.step("script")) == Shape()
    shape = step_shape(document.step("script"), last_results={"script": {"count": 3}})
    assert shape.child("count").kind == "integer"


def test_last_run_adds_fields_to_declared_schema() -> None:
    document = workflow([llm("a", output_schema={"type": "object", "properties": {"x": {"type": "string"}}})])
    shape = step_shape(document.step("a"), last_results={"a": {"x": "v", "extra": [1]}})
    assert shape.child("x").kind == "string"
    assert shape.child("extra").kind == "array"


# -- readable steps -------------------------------------------------------------------------------


def test_upstream_steps_come_first() -> None:
    index = DependencyIndex(pipeline())
    readable = index.readable_steps("late")
    assert readable == [("fetch", True), ("summarise", True), ("loop", True), ("approve", False)]


def test_downstream_steps_are_never_offered() -> None:
    index = DependencyIndex(pipeline())
    ids = [step_id for step_id, _ in index.readable_steps("summarise")]
    assert "late" not in ids
    assert "after" not in ids
    assert "summarise" not in ids


def test_strict_upstream_leaves_out_independent_steps() -> None:
    index = DependencyIndex(pipeline())
    assert index.readable_steps("late", include_independent=False) == [
        ("fetch", True), ("summarise", True), ("loop", True)
    ]


def test_body_step_reads_outer_level() -> None:
    index = DependencyIndex(pipeline())
    ids = [step_id for step_id, _ in index.readable_steps("body")]
    assert "fetch" in ids
    assert "loop" not in ids
    assert "late" not in ids  # late reads loop, so reading late from the body closes a cycle


def test_body_steps_are_hidden_from_other_levels() -> None:
    index = DependencyIndex(pipeline())
    ids = [step_id for step_id, _ in index.readable_steps("approve")]
    assert "body" not in ids


# -- completion -----------------------------------------------------------------------------------


def test_empty_prefix_offers_roots() -> None:
    document = pipeline()
    assert texts("", "late", document) == ["steps.", "input.", "run.id"]


def test_body_prefix_offers_item_and_index() -> None:
    document = pipeline()
    assert texts("i", "body", document) == ["input.", "item", "index"]


def test_step_prefix_filters_ids() -> None:
    document = pipeline()
    assert texts("steps.s", "late", document) == ["steps.summarise.result"]
    assert texts("steps.", "summarise", document) == ["steps.fetch.result", "steps.loop.result", "steps.approve.result"]


def test_result_path_lists_schema_properties() -> None:
    document = pipeline()
    assert texts("steps.summarise.result.", "late", document) == [
        "steps.summarise.result.title",
        "steps.summarise.result.tags",
        "steps.summarise.result.author",
    ]
    assert texts("steps.summarise.result.t", "late", document) == [
        "steps.summarise.result.title",
        "steps.summarise.result.tags",
    ]


def test_list_path_offers_first_index() -> None:
    document = pipeline()
    assert texts("steps.summarise.result.tags", "late", document) == ["steps.summarise.result.tags"]
    candidates = completions(document, "late", "steps.summarise.result.tags[")
    assert [(candidate.text, candidate.kind) for candidate in candidates] == [("steps.summarise.result.tags[0]", "string")]


def test_nested_path_walks_ref() -> None:
    document = pipeline()
    assert texts("steps.summarise.result.author.", "late", document) == ["steps.summarise.result.author.name"]


def test_downstream_step_path_gives_nothing() -> None:
    document = pipeline()
    assert texts("steps.after.result.", "late", document) == []


def test_input_paths_come_from_input_schema() -> None:
    document = pipeline()
    assert texts("input.", "late", document) == ["input.topic"]
    assert texts("input.x", "late", document) == []


def test_item_shape_follows_items_template() -> None:
    document = pipeline()
    assert texts("item.", "body", document, schemas=OUTPUTS) == ["item.email"]


def test_item_shape_of_literal_list() -> None:
    document = workflow([for_each("loop", [{"n": 1}], [lua("body")])])
    assert texts("item.", "body", document) == ["item.n"]


def test_last_run_results_fill_unknown_shapes() -> None:
    document = pipeline()
    results = {"fetch": {"rows": [{"email": "a@b"}], "total": 1}}
    assert texts("steps.fetch.result.", "late", document, last_results=results) == [
        "steps.fetch.result.rows",
        "steps.fetch.result.total",
    ]


def test_leading_space_is_kept() -> None:
    document = pipeline()
    assert texts(" steps.s", "late", document) == [" steps.summarise.result"]


def test_unknown_step_raises_with_id() -> None:
    with pytest.raises(KeyError, match="'nope'"):
        completions(pipeline(), "nope", "")


def test_reused_index_gives_same_candidates() -> None:
    document = pipeline()
    index = DependencyIndex(document)
    assert texts("steps.", "late", document, index=index) == texts("steps.", "late", document)
