"""Re-runs from a step and test runs with pinned outputs: which steps execute again and which are seeded."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.engine import Engine, EngineError, EventType
from studio.model.workflow import Workflow
from studio.store import Store, StoreError
from tests.conftest import EventLog, append_step, build_workflow, count_lines, for_each_step, lua_step

pytestmark = pytest.mark.asyncio(loop_scope="module")


def fan_workflow(side_file: str) -> Workflow:
    """src -> fan (double each item) -> total -> report, and 'side' (appends a line) -> total.

    'side' precedes 'total' so that a failing 'total' never cancels it half-way.
    """
    return build_workflow(
        [
            lua_step("src", "return {1, 2, 3}"),
            for_each_step("fan", "{{steps.src.result}}", [lua_step("double", "return n * 2", {"n": "{{item}}"})]),
            lua_step(
                "total",
                "if fail then error('total refused') end local s = 0 for _, v in ipairs(values) do s = s + v end "
                "return s",
                {"values": "{{steps.fan.result.items}}", "fail": "{{input.fail}}"},
            ),
            lua_step("report", "return 'total ' .. t", {"t": "{{steps.total.result}}"}),
            append_step("side", side_file),
        ],
        [("fan", "total"), ("side", "total")],
        inputs={"fail": {"type": "boolean", "default": False}},
    )


def started_keys(log: EventLog, run_id: str) -> list[str]:
    return sorted(str(event.step_key) for event in log.of_type(EventType.STEP_STARTED, run_id))


async def finished_run(studio: Engine, workflow: Workflow, **inputs: bool) -> str:
    run_id = await studio.run_workflow(workflow, inputs)
    await studio.wait(run_id)
    return run_id


async def test_rerun_reuses_upstream_and_side(
    engine: tuple[Engine, EventLog], store: Store, tools_file: tuple[str, Path]
) -> None:
    studio, log = engine
    name, path = tools_file
    first = await finished_run(studio, fan_workflow(name))

    second = await studio.rerun_from(first, "total")
    summary = await studio.wait(second)

    assert summary.status == "completed", summary.error
    assert summary.result == store.get_run(first).result
    assert started_keys(log, second) == ["report", "total"]
    assert count_lines(path) == {"side": 1}, "a reused step must not execute again"
    run = store.get_run(second)
    assert run.parent_run_id == first
    assert run.version_id == store.get_run(first).version_id
    rows = store.step_runs(second)
    reused = sorted(key for key, row in rows.items() if row.reused_from == first)
    assert reused == ["fan", "fan[0].double", "fan[1].double", "fan[2].double", "side", "src"]
    assert rows["total"].reused_from is None
    assert rows["total"].status == "completed"
    reused_events = [e for e in log.of_type(EventType.STEP_COMPLETED, second) if e.data.get("reused_from") == first]
    assert len(reused_events) == 6


async def test_rerun_from_body_step_reruns_fan(
    engine: tuple[Engine, EventLog], store: Store, tools_file: tuple[str, Path]
) -> None:
    studio, log = engine
    name, path = tools_file
    first = await finished_run(studio, fan_workflow(name))

    second = await studio.rerun_from(first, "double")
    summary = await studio.wait(second)

    assert summary.status == "completed", summary.error
    expected = ["fan", "fan[0].double", "fan[1].double", "fan[2].double", "report", "total"]
    assert started_keys(log, second) == expected
    assert count_lines(path) == {"side": 1}
    rows = store.step_runs(second)
    assert rows["src"].reused_from == first
    assert rows["fan[0].double"].reused_from is None


async def test_rerun_rejects_failed_upstream(
    engine: tuple[Engine, EventLog], store: Store, tools_file: tuple[str, Path]
) -> None:
    studio, _log = engine
    first = await finished_run(studio, fan_workflow(tools_file[0]), fail=True)
    assert store.get_run(first).status == "failed"

    with pytest.raises(EngineError) as rejected:
        await studio.rerun_from(first, "report")

    message = str(rejected.value)
    assert "'total' (failed)" in message
    assert "re-run from the earliest of them" in message
    assert len(store.list_runs()) == 1, "a rejected re-run must not create a run"


async def test_rerun_failed_step_runs_it_again(
    engine: tuple[Engine, EventLog], store: Store, tools_file: tuple[str, Path]
) -> None:
    studio, log = engine
    first = await finished_run(studio, fan_workflow(tools_file[0]), fail=True)

    second = await studio.rerun_from(first, "total")
    summary = await studio.wait(second)

    # Re-runs keep the recorded inputs, so the step fails the same way; it did execute again.
    assert summary.status == "failed"
    assert started_keys(log, second) == ["total"]
    assert store.step_runs(second)["report"].status == "skipped"


async def test_rerun_unknown_step_lists_steps(engine: tuple[Engine, EventLog], tools_file: tuple[str, Path]) -> None:
    studio, _log = engine
    first = await finished_run(studio, fan_workflow(tools_file[0]))

    with pytest.raises(EngineError) as rejected:
        await studio.rerun_from(first, "nope")

    assert "step 'nope' does not exist" in str(rejected.value)
    assert "src, fan, total, report, side" in str(rejected.value)


# -- pinned outputs in test runs ---------------------------------------------------------------------


async def test_pinned_step_skips_executor(
    engine: tuple[Engine, EventLog], store: Store, tools_file: tuple[str, Path]
) -> None:
    studio, log = engine
    name, path = tools_file
    workflow = build_workflow(
        [append_step("fetch", name), lua_step("use", "return v.n + 1", {"v": "{{steps.fetch.result}}"})]
    )

    run_id = await studio.start_test_run(workflow, {}, {"fetch": {"n": 41}})
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"use": 42}
    assert not path.exists(), "a pinned step must not call its executor"
    pinned = [e for e in log.of_type(EventType.STEP_COMPLETED, run_id) if e.data.get("pinned") is True]
    assert [e.step_key for e in pinned] == ["fetch"]
    assert started_keys(log, run_id) == ["use"]
    run = store.get_run(run_id)
    assert run.is_test
    assert store.get_version(run.version_id).kind == "test"
    assert store.list_versions(workflow.id) == []
    assert store.step_runs(run_id)["fetch"].pinned


async def test_stored_pins_apply_to_test_runs_only(
    engine: tuple[Engine, EventLog], store: Store, tools_file: tuple[str, Path]
) -> None:
    studio, log = engine
    name, path = tools_file
    workflow = build_workflow(
        [append_step("fetch", name), lua_step("use", "return v", {"v": "{{steps.fetch.result}}"})]
    )
    published = await finished_run(studio, workflow)
    assert count_lines(path) == {"fetch": 1}
    recorded = store.step_runs(published)["fetch"].result

    pin = store.pin_from_run(published, "fetch")
    assert (pin.source, pin.value) == ("recorded", recorded)
    again = await finished_run(studio, workflow)

    assert count_lines(path) == {"fetch": 2}, "pins must never apply to runs of published versions"
    assert not [e for e in log.of_type(EventType.STEP_COMPLETED, again) if e.data.get("pinned")]
    assert not store.get_run(again).is_test

    store.set_pin(workflow.id, "fetch", {"edited": True})
    test_run = await studio.start_test_run(workflow)
    summary = await studio.wait(test_run)

    assert summary.result == {"use": {"edited": True}}
    assert count_lines(path) == {"fetch": 2}
    assert store.pins(workflow.id)["fetch"].source == "edited"
    assert [v.number for v in store.list_versions(workflow.id)] == [1]


async def test_test_snapshots_keep_version_numbers(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _log = engine
    workflow = build_workflow([lua_step("one", "return 1")])

    first_test = await studio.start_test_run(workflow, pins={})
    second_test = await studio.start_test_run(workflow, pins={})
    published = store.publish_workflow(workflow)

    assert published.number == 1
    assert published.kind == "published"
    snapshot = store.get_version(store.get_run(first_test).version_id)
    assert snapshot.number == -1
    assert store.get_run(second_test).version_id == snapshot.id, "identical drafts share one snapshot"
    await studio.wait(first_test)
    await studio.wait(second_test)


async def test_pin_errors_name_step(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _log = engine
    workflow = build_workflow(
        [lua_step("src", "return {1}"), for_each_step("fan", "{{steps.src.result}}", [lua_step("inner", "return 1")])]
    )

    with pytest.raises(EngineError, match=r"'ghost'.*no such top-level step"):
        await studio.start_test_run(workflow, pins={"ghost": 1})
    with pytest.raises(EngineError, match=r"inside for_each 'fan'.*pin 'fan' instead"):
        await studio.start_test_run(workflow, pins={"inner": 1})
    with pytest.raises(StoreError, match="workflow 'missing-workflow' was not found"):
        store.set_pin("missing-workflow", "src", 1)
    with pytest.raises(StoreError, match="pin source 'guessed' is invalid"):
        store.set_pin(workflow.id, "src", 1, source="guessed")


async def test_clear_pin_and_pin_incomplete(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _log = engine
    workflow = build_workflow([lua_step("bad", "error('no')"), lua_step("after", "return 1")], [("bad", "after")])
    run_id = await finished_run(studio, workflow)

    with pytest.raises(StoreError, match="step 'bad' is failed in run"):
        store.pin_from_run(run_id, "bad")
    with pytest.raises(StoreError, match="step 'never' did not run"):
        store.pin_from_run(run_id, "never")

    store.set_pin(workflow.id, "bad", None)
    assert store.pins(workflow.id)["bad"].value is None
    assert store.clear_pin(workflow.id, "bad")
    assert not store.clear_pin(workflow.id, "bad")
    assert store.pins(workflow.id) == {}
