"""Tests of the workflow document diff: steps, edges, notes, config fields and for_each bodies."""

from __future__ import annotations

import copy
from typing import Any

from studio.model.diff import EdgeKey, FieldChange, diff_workflows
from studio.model.document import workflow_from_data
from studio.model.workflow import Workflow


def lua(step_id: str, source: str = "return 1", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "lua_script", "config": {"source": source, "inputs": {}}, **extra}


def base_document() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "id": "wf-1",
        "name": "Diff test",
        "steps": [
            lua("fetch", position={"x": 0, "y": 0}),
            {
                "id": "ask",
                "type": "llm_call",
                "config": {"model": "m1", "prompt": "Summarise {{steps.fetch.result}}", "temperature": 0.2},
            },
            {
                "id": "loop",
                "type": "for_each",
                "config": {"items": [1, 2], "steps": [lua("body-a"), lua("body-b")], "edges": []},
            },
            lua("end"),
        ],
        "edges": [{"source": "fetch", "target": "ask"}, {"source": "ask", "target": "end"}],
        "notes": [{"id": "n1", "text": "hello"}],
    }


def build(data: dict[str, Any]) -> Workflow:
    return workflow_from_data(data, "test")


def test_identical_documents_are_empty() -> None:
    result = diff_workflows(build(base_document()), build(base_document()))

    assert result.is_empty()
    assert result.summary() == "no differences"


def test_added_removed_and_changed_steps() -> None:
    new = base_document()
    new["steps"].append(lua("extra"))
    new["steps"] = [step for step in new["steps"] if step["id"] != "end"]
    new["edges"] = [{"source": "fetch", "target": "ask"}]
    new["steps"][1]["config"]["prompt"] = "Shorten {{steps.fetch.result}}"

    result = diff_workflows(build(base_document()), build(new))

    assert result.added == ["extra"]
    assert result.removed == ["end"]
    assert result.changed == ["ask"]
    assert result.steps["ask"].changes == (
        FieldChange("config.prompt", "Summarise {{steps.fetch.result}}", "Shorten {{steps.fetch.result}}"),
    )
    assert result.edges_removed == [EdgeKey(None, "ask", "end")]
    assert result.edges_added == []


def test_position_only_is_moved() -> None:
    new = base_document()
    new["steps"][0]["position"] = {"x": 300, "y": 40}

    result = diff_workflows(build(base_document()), build(new))

    assert result.moved == ["fetch"]
    assert result.changed == []
    assert result.steps["fetch"].changes == ()


def test_changed_and_moved_step_is_changed() -> None:
    new = base_document()
    new["steps"][0]["position"] = {"x": 300, "y": 40}
    new["steps"][0]["config"]["source"] = "return 2"

    result = diff_workflows(build(base_document()), build(new))

    assert result.changed == ["fetch"]
    assert result.steps["fetch"].moved is True


def test_field_added_removed_and_nested_paths() -> None:
    new = base_document()
    config = new["steps"][1]["config"]
    del config["temperature"]
    config["max_tokens"] = 100
    new["steps"][1]["retry"] = {"max_attempts": 3}

    result = diff_workflows(build(base_document()), build(new))
    changes = {change.path: change for change in result.steps["ask"].changes}

    assert changes["config.temperature"].old == 0.2
    assert changes["config.temperature"].new is None
    assert changes["config.max_tokens"].new == 100
    assert changes["retry.max_attempts"].old == 1
    assert changes["retry.max_attempts"].new == 3


def test_for_each_body_is_compared_per_step() -> None:
    new = base_document()
    body = new["steps"][2]["config"]
    body["steps"][0]["config"]["source"] = "return 'changed'"
    body["steps"].append(lua("body-c"))
    body["edges"] = [{"source": "body-a", "target": "body-b"}]

    result = diff_workflows(build(base_document()), build(new))

    assert result.changed == ["body-a"]
    assert result.steps["body-a"].container == "loop"
    assert result.added == ["body-c"]
    assert "loop" not in result.steps
    assert result.edges_added == [EdgeKey("loop", "body-a", "body-b")]


def test_step_moved_into_body_reports_container() -> None:
    new = base_document()
    moved = new["steps"].pop(3)
    new["edges"] = [{"source": "fetch", "target": "ask"}]
    new["steps"][2]["config"]["steps"].append(moved)

    result = diff_workflows(build(base_document()), build(new))

    assert result.changed == ["end"]
    assert result.steps["end"].changes[0] == FieldChange("container", None, "loop")


def test_type_change_lists_type_and_config() -> None:
    new = base_document()
    new["steps"][3] = {"id": "end", "type": "human_task", "config": {"title": "Check"}}

    result = diff_workflows(build(base_document()), build(new))
    paths = [change.path for change in result.steps["end"].changes]

    assert result.steps["end"].step_type == "human_task"
    assert "type" in paths
    assert "config.title" in paths


def test_notes_and_workflow_fields() -> None:
    old = base_document()
    new = copy.deepcopy(old)
    new["notes"] = [{"id": "n1", "text": "changed"}, {"id": "n2"}]
    new["name"] = "Renamed"

    result = diff_workflows(build(old), build(new))

    assert result.notes_changed == ["n1"]
    assert result.notes_added == ["n2"]
    assert result.workflow_changes == [FieldChange("name", "Diff test", "Renamed")]
    assert "workflow fields changed: name" in result.summary()


def test_type_change_skips_null_fields() -> None:
    old = base_document()
    old["steps"][3] = {"id": "end", "type": "mcp_call", "config": {"server_url": "https://h/mcp", "tool": "t"}}
    new = base_document()

    result = diff_workflows(build(old), build(new))
    changes = result.steps["end"].changes

    assert [change for change in changes if change.old is None and change.new is None] == []
    assert FieldChange("config.instance_id", None, None, "removed") not in changes
    assert FieldChange("config.server_url", "https://h/mcp", None, "removed") in changes
