"""Tests of template parsing, resolution and rendering."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from studio.model.templates import (
    Reference,
    TemplateResolutionError,
    TemplateSyntaxError,
    iter_references,
    parse_template,
    render_string,
    render_value,
)
from studio.model.workflow import JsonValue


@dataclass
class Scope:
    """A template scope built from plain data."""

    results: dict[str, JsonValue] = field(default_factory=dict)
    input_values: dict[str, JsonValue] = field(default_factory=dict)
    current: tuple[JsonValue, int] | None = None
    run: str = "run-42"

    def step_result(self, step_id: str) -> JsonValue:
        return self.results[step_id]

    @property
    def inputs(self) -> Mapping[str, JsonValue]:
        return self.input_values

    @property
    def run_id(self) -> str:
        return self.run

    @property
    def item(self) -> tuple[JsonValue, int] | None:
        return self.current


RESULTS: dict[str, JsonValue] = {
    "fetch": {"rows": [{"email": "a@example.org"}, {"email": "b@example.org"}], "count": 2, "none": None},
    "flag": True,
    "empty": None,
}


@pytest.fixture
def scope() -> Scope:
    return Scope(results=dict(RESULTS), input_values={"topic": "owls", "limit": 5, "tags": ["x", "y"]})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{steps.fetch.result.rows}}", RESULTS["fetch"]["rows"]),  # type: ignore[index,call-overload]
        ("{{steps.fetch.result.count}}", 2),
        ("{{steps.fetch.result.none}}", None),
        ("{{steps.empty.result}}", None),
        ("{{steps.flag.result}}", True),
        ("{{input.tags}}", ["x", "y"]),
        ("{{ input.limit }}", 5),
    ],
)
def test_single_reference_keeps_type(scope: Scope, text: str, expected: JsonValue) -> None:
    value = render_string(text, scope)
    assert value == expected
    assert type(value) is type(expected)


def test_mixed_text_renders_objects_as_json(scope: Scope) -> None:
    text = "Rows: {{steps.fetch.result.rows[0]}}, count {{steps.fetch.result.count}}, none {{steps.empty.result}}"
    assert render_string(text, scope) == 'Rows: {"email": "a@example.org"}, count 2, none null'


def test_mixed_text_keeps_strings_unquoted(scope: Scope) -> None:
    assert render_string("About {{input.topic}}!", scope) == "About owls!"


def test_list_index_resolves(scope: Scope) -> None:
    assert render_string("{{steps.fetch.result.rows[1].email}}", scope) == "b@example.org"


def test_index_out_of_range_names_size(scope: Scope) -> None:
    with pytest.raises(TemplateResolutionError) as caught:
        render_string("{{steps.fetch.result.rows[5]}}", scope)
    message = str(caught.value)
    assert "[5]" in message
    assert "2 item(s)" in message
    assert caught.value.missing_segment == "[5]"


def test_index_on_object_is_rejected(scope: Scope) -> None:
    with pytest.raises(TemplateResolutionError) as caught:
        render_string("{{steps.fetch.result[0]}}", scope)
    assert "not a list" in str(caught.value)


def test_missing_field_message_names_path(scope: Scope) -> None:
    with pytest.raises(TemplateResolutionError) as caught:
        render_string("{{steps.fetch.result.rows[0].phone}}", scope)
    message = str(caught.value)
    assert "steps.fetch.result.rows[0].phone" in message
    assert "'phone'" in message
    assert "result.rows[0]" in message
    assert "email" in message  # the fields that do exist
    assert caught.value.missing_segment == "phone"
    assert caught.value.reference.step_id == "fetch"


def test_field_of_scalar_is_rejected(scope: Scope) -> None:
    with pytest.raises(TemplateResolutionError) as caught:
        render_string("{{steps.fetch.result.count.value}}", scope)
    assert "a number" in str(caught.value)
    assert caught.value.missing_segment == "value"


def test_step_without_result_is_named(scope: Scope) -> None:
    with pytest.raises(TemplateResolutionError) as caught:
        render_string("{{steps.later.result}}", scope)
    assert "step 'later' has no result" in str(caught.value)
    assert caught.value.missing_segment == "later"


def test_missing_result_never_becomes_empty_text(scope: Scope) -> None:
    with pytest.raises(TemplateResolutionError):
        render_string("prefix {{steps.fetch.result.nothing}} suffix", scope)


def test_item_and_index_render_inside_body() -> None:
    body_scope = Scope(current=({"name": "Ada", "tags": ["a"]}, 3))
    assert render_string("{{item.name}}", body_scope) == "Ada"
    assert render_string("{{item.tags[0]}}", body_scope) == "a"
    assert render_string("{{index}}", body_scope) == 3
    assert render_string("{{item}}", body_scope) == {"name": "Ada", "tags": ["a"]}
    assert render_string("#{{index}}: {{item.name}}", body_scope) == "#3: Ada"


def test_item_outside_body_is_rejected(scope: Scope) -> None:
    with pytest.raises(TemplateResolutionError) as caught:
        render_string("{{item}}", scope)
    assert "only available inside a for_each body" in str(caught.value)


def test_run_id_renders(scope: Scope) -> None:
    assert render_string("run {{run.id}}", scope) == "run run-42"


def test_missing_input_names_it(scope: Scope) -> None:
    with pytest.raises(TemplateResolutionError) as caught:
        render_string("{{input.audience}}", scope)
    assert "no field 'audience'" in str(caught.value)
    assert caught.value.missing_segment == "audience"


def test_render_value_walks_nested_data(scope: Scope) -> None:
    value: JsonValue = {"query": "{{input.topic}}", "list": ["{{input.limit}}", 1], "n": None}
    assert render_value(value, scope) == {"query": "owls", "list": [5, 1], "n": None}
    assert value == {"query": "{{input.topic}}", "list": ["{{input.limit}}", 1], "n": None}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{{}}", "empty template"),
        ("{{steps.fetch}}", "invalid step reference"),
        ("{{steps.fetch.output}}", "invalid step reference"),
        ("{{input}}", "invalid input reference"),
        ("{{input[0]}}", "unknown template"),
        ("{{steps.fetch.result..rows}}", "invalid path"),
        ("{{steps.fetch.result[x]}}", "invalid path"),
        ("{{run.name}}", "unknown template"),
        ("{{Steps.fetch.result}}", "unknown template"),
        ("{{input.topic", "unbalanced braces"),
        ("{{a}} and {{", "unknown template"),
    ],
)
def test_syntax_errors_are_explained(text: str, fragment: str) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        parse_template(text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "expression",
    [
        "{{__import__('os')}}",
        "{{__import__('os').system('true')}}",
        "{{input.topic + 1}}",
        "{{steps.fetch.result.rows[0:1]}}",
        "{{lambda: 1}}",
    ],
)
def test_code_is_rejected(scope: Scope, expression: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        render_string(expression, scope)


def test_dunder_path_segment_is_plain_key() -> None:
    # A dunder-looking segment is only ever a dict key lookup, never attribute access.
    data_scope = Scope(results={"s": {"__class__": "just data"}})
    assert render_string("{{steps.s.result.__class__}}", data_scope) == "just data"


def test_single_braces_are_plain_text(scope: Scope) -> None:
    text = 'JSON like {"a": 1} stays as written'
    assert render_string(text, scope) == text
    assert parse_template(text).parts == (text,)


def test_nested_json_closing_braces_are_text(scope: Scope) -> None:
    text = 'Reply as {"a": {"b": 1}} about {{input.topic}}: {"c": {"d": [2]}}'
    assert render_string(text, scope) == 'Reply as {"a": {"b": 1}} about owls: {"c": {"d": [2]}}'


def test_lone_opening_braces_are_rejected() -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        parse_template("Hello {{input.name}} and {{")
    assert "unbalanced braces" in str(caught.value)


def test_parse_splits_literal_and_references() -> None:
    template = parse_template("Hi {{input.name}}, see {{steps.fetch.result.rows[0].email}}.")
    assert template.parts[0] == "Hi "
    assert template.parts[2] == ", see "
    assert template.parts[4] == "."
    assert template.references == (
        Reference("input", ("name",), None, "input.name"),
        Reference("steps", ("rows", 0, "email"), "fetch", "steps.fetch.result.rows[0].email"),
    )
    assert not template.is_single_reference


def test_iter_references_walks_json() -> None:
    value: JsonValue = {"a": ["{{steps.x.result}}", {"b": "{{input.c}} and {{index}}"}], "n": 3}
    roots = [(reference.root, reference.step_id) for reference in iter_references(value)]
    assert roots == [("steps", "x"), ("input", None), ("index", None)]
