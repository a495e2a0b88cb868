"""compare_runs and diff_json: per-step status, duration and output differences between two runs."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from studio.engine import Engine
from studio.engine.compare import CompareError, JsonChange, compare_runs, diff_json
from studio.model.workflow import Workflow
from studio.store import Store
from tests.conftest import EventLog, build_workflow, for_each_step, lua_step

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"x": 1}, {"x": 1}, []),
        ({"x": 1}, {"x": 2}, [JsonChange("$.x", "changed", 1, 2)]),
        ({"x": 1}, {}, [JsonChange("$.x", "removed", 1, None)]),
        ({}, {"y": [1]}, [JsonChange("$.y", "added", None, [1])]),
        ([1, 2], [1], [JsonChange("$[1]", "removed", 2, None)]),
        ({"a": [{"e": "p"}]}, {"a": [{"e": "q"}]}, [JsonChange("$.a[0].e", "changed", "p", "q")]),
        (1, 1.0, []),
        (1, True, [JsonChange("$", "changed", 1, True)]),
        (None, False, [JsonChange("$", "changed", None, False)]),
        ("1", 1, [JsonChange("$", "changed", "1", 1)]),
        ({"k": None}, {"k": {}}, [JsonChange("$.k", "changed", None, {})]),
    ],
)
async def test_diff_json_cases(a: JsonValue, b: JsonValue, expected: list[JsonChange]) -> None:
    assert diff_json(a, b) == expected


def scaled_workflow() -> Workflow:
    """src -> fan (each item times the input factor) -> total; the factor changes the outputs."""
    return build_workflow(
        [
            lua_step("src", "return {1, 2}"),
            for_each_step(
                "fan",
                "{{steps.src.result}}",
                [lua_step("scale", "return n * f", {"n": "{{item}}", "f": "{{input.factor}}"})],
            ),
            lua_step("total", "return #v", {"v": "{{steps.fan.result.items}}"}),
        ],
        inputs={"factor": {"type": "number", "default": 1}},
    )


async def run_to_end(studio: Engine, workflow: Workflow, **inputs: JsonValue) -> str:
    run_id = await studio.run_workflow(workflow, inputs)
    await studio.wait(run_id)
    return run_id


async def test_compare_changed_outputs(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _log = engine
    workflow = scaled_workflow()
    first = await run_to_end(studio, workflow, factor=1)
    second = await run_to_end(studio, workflow, factor=3)

    comparison = compare_runs(store, first, second)

    keys = [step.step_key for step in comparison.steps]
    assert keys == ["src", "fan", "fan[0].scale", "fan[1].scale", "total"]
    by_key = {step.step_key: step for step in comparison.steps}
    assert by_key["src"].output_equal
    assert by_key["total"].output_equal
    assert not by_key["fan"].output_equal
    assert by_key["fan"].changes == [
        JsonChange("$.items[0]", "changed", 1, 3),
        JsonChange("$.items[1]", "changed", 2, 6),
    ]
    assert by_key["fan[1].scale"].changes == [JsonChange("$", "changed", 2, 6)]
    assert (by_key["src"].status_a, by_key["src"].status_b) == ("completed", "completed")
    assert by_key["src"].duration_a is not None
    assert [step.step_key for step in comparison.differing] == ["fan", "fan[0].scale", "fan[1].scale"]
    assert comparison.to_json()["steps"][0]["step_key"] == "src"


async def test_compare_failed_run_missing_steps(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _log = engine
    workflow = build_workflow(
        [
            lua_step("check", "if bad then error('bad input') end return 1", {"bad": "{{input.bad}}"}),
            lua_step("after", "return 2"),
        ],
        [("check", "after")],
        inputs={"bad": {"type": "boolean", "default": False}},
    )
    good = await run_to_end(studio, workflow)
    bad = await run_to_end(studio, workflow, bad=True)

    comparison = compare_runs(store, good, bad)

    by_key = {step.step_key: step for step in comparison.steps}
    assert (comparison.status_a, comparison.status_b) == ("completed", "failed")
    assert (by_key["check"].status_a, by_key["check"].status_b) == ("completed", "failed")
    assert by_key["check"].changes == [JsonChange("$", "changed", 1, None)]
    assert (by_key["after"].status_a, by_key["after"].status_b) == ("completed", "skipped")
    assert by_key["after"].duration_b is None


async def test_compare_rejects_other_workflow(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _log = engine
    first = await run_to_end(studio, build_workflow([lua_step("one", "return 1")], name="First flow"))
    second = await run_to_end(studio, build_workflow([lua_step("one", "return 1")], name="Second flow"))

    with pytest.raises(CompareError) as rejected:
        compare_runs(store, first, second)

    message = str(rejected.value)
    assert "'First flow'" in message
    assert "'Second flow'" in message
    assert "belong to different workflows" in message
