"""Engine scheduling: sequential and parallel DAGs, template data flow, run results, journal order, concurrency."""

from __future__ import annotations

import pytest

from studio.engine import Engine, EventType, RunEvent
from studio.store import Store
from tests.conftest import EngineFactory, EventLog, build_workflow, lua_step, mcp_step

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_sequential_chain_passes_results(engine: tuple[Engine, EventLog]) -> None:
    studio, log = engine
    workflow = build_workflow(
        [
            lua_step("first", "return {values = {1, 2, 3}, label = 'x'}"),
            lua_step("second", "return #values * 10", {"values": "{{steps.first.result.values}}"}),
            lua_step("third", "return n + 1", {"n": "{{steps.second.result}}"}),
        ]
    )

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"third": 31}
    started = [event.step_key for event in log.of_type(EventType.STEP_STARTED, run_id)]
    assert started == ["first", "second", "third"]


async def test_single_reference_keeps_type(engine: tuple[Engine, EventLog]) -> None:
    studio, _ = engine
    workflow = build_workflow(
        [
            lua_step("source", "return {items = {1, 2}, flag = true, count = 7}"),
            lua_step(
                "check",
                "return {items_type = type(items), flag_type = type(flag), count = count, text = text}",
                {
                    "items": "{{steps.source.result.items}}",
                    "flag": "{{steps.source.result.flag}}",
                    "count": "{{steps.source.result.count}}",
                    "text": "n={{steps.source.result.count}} items={{steps.source.result.items}}",
                },
            ),
        ]
    )

    summary = await studio.wait(await studio.run_workflow(workflow))

    assert summary.status == "completed", summary.error
    assert summary.result == {
        "check": {"items_type": "table", "flag_type": "boolean", "count": 7, "text": "n=7 items=[1, 2]"}
    }


async def test_parallel_branches_join(engine: tuple[Engine, EventLog]) -> None:
    studio, log = engine
    workflow = build_workflow(
        [
            lua_step("root", "return 2"),
            mcp_step("left", "wait", {"seconds": 0.3, "steps": 1}),
            mcp_step("right", "wait", {"seconds": 0.3, "steps": 1}),
            lua_step("join", "return a * 10 + b", {"a": "{{steps.root.result}}", "b": 1}),
        ],
        [("root", "left"), ("root", "right"), ("left", "join"), ("right", "join")],
    )

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"join": 21}
    intervals = _intervals(log.events, run_id)
    assert _max_overlap([intervals["left"], intervals["right"]]) == 2, intervals
    assert intervals["join"][0] >= max(intervals["left"][1], intervals["right"][1])
    assert intervals["left"][0] >= intervals["root"][1]


async def test_result_is_object_of_sinks(engine: tuple[Engine, EventLog]) -> None:
    studio, _ = engine
    workflow = build_workflow(
        [
            lua_step("start", "return 'a'"),
            lua_step("upper", "return string.upper(s)", {"s": "{{steps.start.result}}"}),
            lua_step("twice", "return s .. s", {"s": "{{steps.start.result}}"}),
            lua_step("alone", "return json.null"),
        ]
    )

    summary = await studio.wait(await studio.run_workflow(workflow))

    assert summary.status == "completed", summary.error
    assert summary.result == {"upper": "A", "twice": "aa", "alone": None}


async def test_inputs_defaults_and_values(engine: tuple[Engine, EventLog]) -> None:
    studio, _ = engine
    workflow = build_workflow(
        [lua_step("sum", "return a + b", {"a": "{{input.a}}", "b": "{{input.b}}"})],
        inputs={"a": {"type": "integer", "default": 1}, "b": {"type": "integer"}},
    )

    summary = await studio.wait(await studio.run_workflow(workflow, {"b": 41}))

    assert summary.result == {"sum": 42}


async def test_events_journaled_before_announce(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _ = engine
    seen: list[RunEvent] = []
    missing: list[tuple[int, str]] = []

    def check_journal(event: RunEvent) -> None:
        seen.append(event)
        if not event.is_ephemeral:
            stored = {row["seq"]: row["type"] for row in store.events(event.run_id)}
            if stored.get(event.seq) != event.type.value:
                missing.append((event.seq, event.type.value))

    studio.add_listener(check_journal)
    workflow = build_workflow(
        [
            mcp_step("slow", "wait", {"seconds": 0.2, "steps": 4}),
            lua_step("log", "print('hello') return 1"),
            lua_step("after", "return x", {"x": "{{steps.log.result}}"}),
        ]
    )

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert missing == []
    run_events = [event for event in seen if event.run_id == run_id]
    seqs = [event.seq for event in run_events]
    assert seqs == list(range(1, len(seqs) + 1)), "announced seqs must be gapless and in order"
    assert any(event.type == EventType.STEP_PROGRESS for event in run_events)
    assert any(event.type == EventType.STEP_LOG for event in run_events)
    journal = store.events(run_id)
    journaled = [row["seq"] for row in journal]
    expected = [event.seq for event in run_events if not event.is_ephemeral]
    assert journaled == expected
    assert store.last_event_seq(run_id) == journaled[-1]


async def test_global_concurrency_limit(make_engine: EngineFactory) -> None:
    studio, log = await make_engine(max_concurrency=2)
    steps = [mcp_step(f"w{index}", "wait", {"seconds": 0.25, "steps": 1}) for index in range(5)]
    workflow = build_workflow(steps)

    run_id = await studio.run_workflow(workflow)
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    intervals = _intervals(log.events, run_id)
    assert len(intervals) == 5
    assert _max_overlap(list(intervals.values())) == 2


async def test_unknown_version_rejected(engine: tuple[Engine, EventLog]) -> None:
    studio, _ = engine
    from studio.store import NotFoundError

    with pytest.raises(NotFoundError, match="no-such-version"):
        await studio.start_run("no-such-version")


def _intervals(events: list[RunEvent], run_id: str) -> dict[str, tuple[float, float]]:
    """Map each step key to (start, end) times taken from its last step_started and its step_completed."""
    starts: dict[str, float] = {}
    intervals: dict[str, tuple[float, float]] = {}
    for event in events:
        if event.run_id != run_id or event.step_key is None:
            continue
        if event.type == EventType.STEP_STARTED:
            starts[event.step_key] = event.at
        elif event.type == EventType.STEP_COMPLETED:
            intervals[event.step_key] = (starts[event.step_key], event.at)
    return intervals


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one moment (an end at t closes before a start at t)."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_count = peak = 0
    for _, delta in points:
        open_count += delta
        peak = max(peak, open_count)
    return peak


async def test_lua_result_checked_against_output_schema(engine: tuple[Engine, EventLog]) -> None:
    studio, _ = engine
    schema = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
    good = lua_step("good", "return {total = 3}")
    bad = lua_step("bad", "return {total = 'three'}")
    for step in (good, bad):
        step["config"]["output_schema"] = schema

    passed = await studio.wait(await studio.run_workflow(build_workflow([good])))
    failed = await studio.wait(await studio.run_workflow(build_workflow([bad])))

    assert passed.status == "completed", passed.error
    assert passed.result == {"good": {"total": 3}}
    assert failed.status == "failed"
    assert isinstance(failed.error, dict)
    assert "result.total does not match the step's output_schema" in str(failed.error["message"])
    assert "'three' is not of type 'number'" in str(failed.error["message"])
