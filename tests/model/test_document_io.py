"""Tests of loading and saving workflow documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from studio.model.document import (
    DocumentError,
    content_hash,
    load_workflow,
    save_workflow,
    workflow_from_data,
    workflow_from_json,
    workflow_from_stored_json,
    workflow_to_data,
    workflow_to_json,
)
from studio.model.workflow import (
    Edge,
    ForEachConfig,
    ForEachStep,
    FormField,
    HumanTaskConfig,
    HumanTaskStep,
    LlmCallConfig,
    LlmCallStep,
    LuaScriptConfig,
    LuaScriptStep,
    McpCallConfig,
    McpCallStep,
    Position,
    StickyNote,
    Workflow,
)


def rich_workflow() -> Workflow:
    """A workflow that uses every step type, a nested body, notes and non-default values."""
    body = [
        LlmCallStep(id="summarise", config=LlmCallConfig(model="m", prompt="Summarise {{item.text}}")),
        LuaScriptStep(id="count", config=LuaScriptConfig(source="return #text", inputs={"text": "{{item.text}}"})),
    ]
    return Workflow(
        name="Round trip",
        description="every step type",
        input_schema={"type": "object", "properties": {"topic": {"type": "string", "default": "owls"}}},
        steps=[
            McpCallStep(
                id="fetch",
                position=Position(x=10, y=-20.5),
                config=McpCallConfig(instance_id="fs", tool="search", arguments={"q": "{{input.topic}}", "n": 3}),
            ),
            ForEachStep(
                id="each",
                config=ForEachConfig(
                    items="{{steps.fetch.result.rows}}",
                    steps=list(body),
                    edges=[Edge(source="summarise", target="count")],
                    output="count",
                    max_parallelism=8,
                ),
            ),
            HumanTaskStep(
                id="approve",
                config=HumanTaskConfig(
                    title="Approve",
                    fields=[FormField(name="note", type="choice", choices=["ok", "no"], default="ok")],
                ),
            ),
        ],
        edges=[Edge(source="fetch", target="each"), Edge(source="each", target="approve")],
        notes=[StickyNote(text="hello")],
        tags=["demo"],
    )


def test_round_trip_preserves_document(tmp_path: Path) -> None:
    workflow = rich_workflow()
    path = tmp_path / "round.workflow.json"
    save_workflow(workflow, path)
    loaded = load_workflow(path)
    assert loaded == workflow
    assert content_hash(loaded) == content_hash(workflow)


def test_saved_file_keeps_step_types(tmp_path: Path) -> None:
    path = tmp_path / "a.workflow.json"
    save_workflow(rich_workflow(), path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert list(data)[:3] == ["schema_version", "id", "name"]
    assert [step["type"] for step in data["steps"]] == ["mcp_call", "for_each", "human_task"]
    assert [step["type"] for step in data["steps"][1]["config"]["steps"]] == ["llm_call", "lua_script"]
    assert "retry" not in data["steps"][0]  # defaults are left out


def test_saved_text_is_stable() -> None:
    workflow = rich_workflow()
    assert workflow_to_json(workflow) == workflow_to_json(workflow_from_json(workflow_to_json(workflow)))
    assert workflow_to_json(workflow).endswith("}\n")


def test_content_hash_ignores_formatting() -> None:
    workflow = rich_workflow()
    compact = json.dumps(workflow_to_data(workflow))
    assert content_hash(workflow_from_json(compact)) == content_hash(workflow)
    changed = workflow.model_copy(update={"name": "Other"})
    assert content_hash(changed) != content_hash(workflow)


def test_unknown_schema_version_is_rejected() -> None:
    with pytest.raises(DocumentError) as caught:
        workflow_from_data({"schema_version": 99, "name": "x"}, "f.workflow.json")
    assert caught.value.problems[0][0] == "schema_version"
    assert "99 is not supported" in str(caught.value)
    assert "f.workflow.json" in str(caught.value)


def test_missing_schema_version_is_rejected() -> None:
    with pytest.raises(DocumentError) as caught:
        workflow_from_data({"name": "x"})
    assert caught.value.problems == [("schema_version", "missing; a workflow file must state its schema_version")]


def test_unknown_step_type_lists_known_types() -> None:
    data = {"schema_version": 1, "steps": [{"id": "a", "type": "http_call"}]}
    with pytest.raises(DocumentError) as caught:
        workflow_from_data(data)
    path, message = caught.value.problems[0]
    assert path == "steps[0]"
    assert "unknown step type 'http_call'" in message
    assert "mcp_call" in message


def test_missing_step_type_is_reported() -> None:
    with pytest.raises(DocumentError) as caught:
        workflow_from_data({"schema_version": 1, "steps": [{"id": "a"}]})
    assert caught.value.problems[0][0] == "steps[0]"
    assert "has no 'type'" in caught.value.problems[0][1]


def test_malformed_json_reports_line_and_column() -> None:
    text = '{\n  "schema_version": 1,\n  "name": "x",,\n}\n'
    with pytest.raises(DocumentError) as caught:
        workflow_from_json(text, "broken.workflow.json")
    assert "line 3, column 15" in str(caught.value)
    assert "broken.workflow.json" in str(caught.value)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_literal_is_rejected(literal: str) -> None:
    text = f'{{"schema_version": 1, "steps": [{{"id": "a", "type": "lua_script", "config": {{"source": "return v", "inputs": {{"v": {literal}}}}}}}]}}'

    with pytest.raises(DocumentError) as caught:
        workflow_from_json(text, "odd.workflow.json")
    with pytest.raises(DocumentError) as stored:
        workflow_from_stored_json(text, "stored version")

    assert f"{literal} is not a JSON number" in str(caught.value)
    assert f"{literal} is not a JSON number" in str(stored.value)


@pytest.mark.parametrize(
    ("step", "path"),
    [
        ({"position": {"x": "nan", "y": 0}}, "steps[0].position.x"),
        ({"timeout_s": float("inf")}, "steps[0].timeout_s"),
        ({"config": {"source": "return v", "inputs": {"v": float("nan")}}}, "steps[0].config.inputs.v"),
    ],
    ids=["position-text", "timeout", "lua-input"],
)
def test_non_finite_number_names_path(step: dict[str, Any], path: str) -> None:
    data = {"schema_version": 1, "steps": [{"id": "a", "type": "lua_script", "config": {"source": "return 1"}, **step}]}

    with pytest.raises(DocumentError) as caught:
        workflow_from_data(data)

    assert any(location.startswith(path) for location, _ in caught.value.problems), caught.value.problems
    assert "finite number" in str(caught.value)


def test_top_level_must_be_object() -> None:
    with pytest.raises(DocumentError) as caught:
        workflow_from_json("[1, 2]")
    assert "found list" in str(caught.value)


def test_unknown_field_is_reported_with_path() -> None:
    data = {"schema_version": 1, "steps": [{"id": "a", "type": "llm_call", "config": {"modle": "m"}}]}
    with pytest.raises(DocumentError) as caught:
        workflow_from_data(data)
    assert caught.value.problems == [("steps[0].config.modle", "unknown field; remove it or check its spelling")]


def test_wrong_types_are_reported_with_paths() -> None:
    data: dict[str, Any] = {
        "schema_version": 1,
        "steps": [
            {"id": "a", "type": "llm_call"},
            {"id": "b", "type": "for_each", "config": {"max_parallelism": "many"}},
            {"id": "c", "type": "for_each", "config": {"steps": [{"id": "d", "type": "lua_script",
                                                                  "config": {"timeout_s": -1}}]}},
        ],
    }
    with pytest.raises(DocumentError) as caught:
        workflow_from_data(data)
    paths = [path for path, _ in caught.value.problems]
    assert paths == ["steps[1].config.max_parallelism", "steps[2].config.steps[0].config.timeout_s"]
    assert "integer" in caught.value.problems[0][1]


def test_invalid_step_id_explains_format() -> None:
    with pytest.raises(DocumentError) as caught:
        workflow_from_data({"schema_version": 1, "steps": [{"id": "Fetch Data", "type": "llm_call"}]})
    path, message = caught.value.problems[0]
    assert path == "steps[0].id"
    assert "'Fetch Data'" in message
    assert "lower-case" in message


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as caught:
        load_workflow(tmp_path / "absent.workflow.json")
    assert "file not found" in str(caught.value)


def test_save_replaces_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "a.workflow.json"
    first = rich_workflow()
    save_workflow(first, path)
    inode_before = path.stat().st_ino
    second = first.model_copy(update={"name": "Second"})
    save_workflow(second, path)
    assert load_workflow(path).name == "Second"
    assert path.stat().st_ino != inode_before  # a new file was renamed over the old one
    assert sorted(item.name for item in tmp_path.iterdir()) == ["a.workflow.json"]


def test_crash_during_save_keeps_old_file(tmp_path: Path) -> None:
    """A process killed while writing the temporary file leaves the saved document intact."""
    path = tmp_path / "a.workflow.json"
    save_workflow(rich_workflow(), path)
    original = path.read_text(encoding="utf-8")
    script = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        from studio.model.document import load_workflow, save_workflow

        path = Path(sys.argv[1])
        workflow = load_workflow(path).model_copy(update={"name": "Never saved"})

        def die_before_rename(descriptor):
            os._exit(9)

        # The temporary file is written but not yet flushed or renamed when the process dies.
        os.fsync = die_before_rename
        save_workflow(workflow, path)
        """
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], check=False, env=dict(os.environ))
    assert result.returncode == 9
    assert path.read_text(encoding="utf-8") == original
    assert load_workflow(path).name == "Round trip"
