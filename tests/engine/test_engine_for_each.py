"""for_each fan-out: ordered results, bounded parallelism, error modes and bad item lists."""

from __future__ import annotations

import pytest

from studio.engine import Engine, EventType
from studio.store import Store
from tests.conftest import EventLog, build_workflow, for_each_step, lua_step, mcp_step

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_results_keep_item_order(engine: tuple[Engine, EventLog]) -> None:
    studio, log = engine
    # Earlier items wait longer, so they finish last; results must still be in input order.
    body = [
        mcp_step("pause", "wait", {"seconds": "{{item.delay}}", "steps": 1}),
        lua_step(
            "label",
            "return name .. '#' .. index",
            {"name": "{{item.name}}", "index": "{{index}}", "waited": "{{steps.pause.result.waited_s}}"},
        ),
    ]
    items = [{"name": "a", "delay": 0.3}, {"name": "b", "delay": 0.2}, {"name": "c", "delay": 0.1}]
    workflow = build_workflow(
        [
            lua_step("source", "return rows", {"rows": items}),
            for_each_step("fan", "{{steps.source.result}}", body, max_parallelism=3),
        ]
    )

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"fan": {"items": ["a#0", "b#1", "c#2"], "errors": []}}
    completions = [
        event.step_key for event in log.of_type(EventType.STEP_COMPLETED, run_id) if event.step_id == "pause"
    ]
    assert completions == ["fan[2].pause", "fan[1].pause", "fan[0].pause"]


async def test_max_parallelism_respected(engine: tuple[Engine, EventLog]) -> None:
    studio, log = engine
    body = [mcp_step("pause", "wait", {"seconds": 0.15, "steps": 1})]
    workflow = build_workflow([for_each_step("fan", list(range(6)), body, max_parallelism=2)])

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    open_count = peak = 0
    for event in log.events:
        if event.run_id != run_id or event.step_id != "pause":
            continue
        if event.type == EventType.STEP_STARTED:
            open_count += 1
        elif event.type == EventType.STEP_COMPLETED:
            open_count -= 1
        peak = max(peak, open_count)
    assert peak == 2


async def test_fail_fast_names_item(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    body = [lua_step("check", "if item == 2 then error('item two is bad') end return item", {"item": "{{item}}"})]
    workflow = build_workflow([for_each_step("fan", [1, 2, 3, 4], body, max_parallelism=1)])

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "failed"
    assert isinstance(summary.error, dict)
    assert summary.error["step_key"] == "fan"
    message = str(summary.error["message"])
    assert "fan[1].check" in message
    assert "item two is bad" in message
    started = [event.step_key for event in log.of_type(EventType.STEP_STARTED, run_id)]
    assert started == ["fan", "fan[0].check", "fan[1].check"]
    assert store.step_runs(run_id)["fan"].status == "failed"


async def test_continue_mode_collects_errors(engine: tuple[Engine, EventLog]) -> None:
    studio, _ = engine
    body = [lua_step("check", "if item % 2 == 0 then error('even ' .. item) end return item", {"item": "{{item}}"})]
    workflow = build_workflow([for_each_step("fan", [1, 2, 3, 4], body, max_parallelism=2, error_mode="continue")])

    summary = await studio.wait(await studio.run_workflow(workflow))

    assert summary.status == "completed", summary.error
    assert isinstance(summary.result, dict)
    result = summary.result["fan"]
    assert isinstance(result, dict)
    assert result["items"] == [1, None, 3, None]
    errors = result["errors"]
    assert isinstance(errors, list)
    assert [entry["index"] for entry in errors] == [1, 3]  # type: ignore[index,call-overload]
    assert [entry["step_key"] for entry in errors] == ["fan[1].check", "fan[3].check"]  # type: ignore[index,call-overload]
    assert "even 2" in str(errors[0])


async def test_empty_list_gives_empty_result(engine: tuple[Engine, EventLog]) -> None:
    studio, _ = engine
    body = [lua_step("never", "error('must not run')")]
    workflow = build_workflow([for_each_step("fan", [], body)])

    summary = await studio.wait(await studio.run_workflow(workflow))

    assert summary.status == "completed", summary.error
    assert summary.result == {"fan": {"items": [], "errors": []}}


async def test_items_not_list_rejected(engine: tuple[Engine, EventLog]) -> None:
    studio, _ = engine
    body = [lua_step("never", "return 1")]
    workflow = build_workflow(
        [lua_step("source", "return 'plain text'"), for_each_step("fan", "{{steps.source.result}}", body)]
    )

    summary = await studio.wait(await studio.run_workflow(workflow))

    assert summary.status == "failed"
    assert isinstance(summary.error, dict)
    message = str(summary.error["message"])
    assert "for_each 'fan' needs a list of items" in message
    assert "a str" in message
    assert summary.error["kind"] == "invalid_input"


async def test_body_reads_outer_step(engine: tuple[Engine, EventLog]) -> None:
    studio, log = engine
    body = [
        lua_step(
            "scale",
            "return item * factor + index",
            {"item": "{{item}}", "index": "{{index}}", "factor": "{{steps.factor.result}}"},
        )
    ]
    workflow = build_workflow(
        [for_each_step("fan", [1, 2, 3], body, max_parallelism=3), lua_step("factor", "return 100")]
    )

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"fan": {"items": [100, 201, 302], "errors": []}}
    started = [event.step_key for event in log.of_type(EventType.STEP_STARTED, run_id)]
    assert started.index("fan") > started.index("factor")


async def test_named_output_step(engine: tuple[Engine, EventLog]) -> None:
    studio, _ = engine
    body = [
        lua_step("first", "return item + 1", {"item": "{{item}}"}),
        lua_step("second", "return 'side'"),
    ]
    workflow = build_workflow([for_each_step("fan", [1, 2], body, output="first")])

    summary = await studio.wait(await studio.run_workflow(workflow))

    assert summary.result == {"fan": {"items": [2, 3], "errors": []}}
