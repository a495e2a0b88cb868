"""Pause, resume and stop: running steps finish or are cancelled, on the engine and on the MCP server."""

from __future__ import annotations

import asyncio
import time

import pytest

from studio.engine import Engine, EngineError, EventType
from studio.engine.executors_api import spec_from_server_url
from studio.store import Store
from tests.conftest import TOOLS_URL, EngineFactory, EventLog, SharedServices, build_workflow, lua_step, mcp_step

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def server_info(services: SharedServices) -> dict[str, object]:
    """Call server_info on the module's shared tool server (the one the engine's steps use)."""
    spec = spec_from_server_url(TOOLS_URL, services.environ)
    result = await services.mcp.call_tool(spec, "server_info", {})
    assert isinstance(result.value, dict)
    return result.value


async def test_pause_lets_step_finish(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    workflow = build_workflow(
        [
            mcp_step("slow", "wait", {"seconds": 0.4, "steps": 2}),
            lua_step("next", "return w", {"w": "{{steps.slow.result.waited_s}}"}),
        ]
    )

    run_id = await studio.run_workflow(workflow)
    await log.wait_type(EventType.STEP_STARTED, "slow")
    await studio.pause(run_id)
    summary = await studio.wait(run_id)

    assert summary.status == "paused"
    assert store.get_run(run_id).status == "paused"
    rows = store.step_runs(run_id)
    assert rows["slow"].status == "completed"
    assert "next" not in rows
    types = [event.type for event in log.events if event.run_id == run_id]
    assert types.index(EventType.RUN_PAUSED) > types.index(EventType.STEP_COMPLETED)

    await studio.resume(run_id)
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"next": 0.4}
    assert log.of_type(EventType.RUN_RESUMED, run_id)


async def test_pause_settles_with_parallel_chains(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    # Each step loops for some milliseconds, so it runs on a worker thread and the chains end
    # their current steps at different times after the pause.
    source = "local t = 0 for i = 1, 600000 do t = t + 1 end return v + 1"
    steps = []
    edges = []
    for chain in ("a", "b", "c"):
        steps.append(lua_step(f"{chain}0", source, {"v": 0}))
        for index in range(1, 15):
            steps.append(lua_step(f"{chain}{index}", source, {"v": f"{{{{steps.{chain}{index - 1}.result}}}}"}))
            edges.append((f"{chain}{index - 1}", f"{chain}{index}"))
    run_id = await studio.run_workflow(build_workflow(steps, edges))

    for _ in range(3):
        await log.wait_type(EventType.STEP_COMPLETED, past=False)
        await studio.pause(run_id)
        summary = await asyncio.wait_for(studio.wait(run_id), 10)
        assert summary.status == "paused"
        assert all(row.status == "completed" for row in store.step_runs(run_id).values())
        await studio.resume(run_id)
        if not studio.is_live(run_id):
            break

    summary = await studio.wait(run_id)
    assert summary.status == "completed", summary.error
    assert summary.result == {"a14": 15, "b14": 15, "c14": 15}


async def test_pause_before_parallel_successors(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    workflow = build_workflow(
        [
            mcp_step("first", "wait", {"seconds": 0.3, "steps": 1}),
            lua_step("a", "return 1", {"x": "{{steps.first.result}}"}),
            lua_step("b", "return 2", {"x": "{{steps.first.result}}"}),
        ]
    )

    run_id = await studio.run_workflow(workflow)
    await log.wait_type(EventType.STEP_STARTED, "first")
    await studio.pause(run_id)
    assert (await studio.wait(run_id)).status == "paused"

    assert set(store.step_runs(run_id)) == {"first"}
    await studio.resume(run_id)
    assert (await studio.wait(run_id)).result == {"a": 1, "b": 2}


async def test_resume_rejects_running_run(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _ = engine
    run_id = await studio.run_workflow(build_workflow([lua_step("only", "return 1")]))
    assert (await studio.wait(run_id)).status == "completed"

    with pytest.raises(EngineError, match="not paused"):
        await studio.resume(run_id)
    with pytest.raises(EngineError, match="already ended"):
        await studio.stop(run_id)
    with pytest.raises(EngineError, match="cannot pause run"):
        await studio.pause(run_id)


async def test_stop_cancels_tool_call(
    engine: tuple[Engine, EventLog], store: Store, shared_services: SharedServices
) -> None:
    studio, log = engine
    before = await server_info(shared_services)
    workflow = build_workflow(
        [
            mcp_step("long", "wait", {"seconds": 60, "steps": 600}),
            lua_step("never", "return 1", {"x": "{{steps.long.result}}"}),
        ]
    )

    run_id = await studio.run_workflow(workflow)
    await log.wait_type(EventType.STEP_PROGRESS, "long")
    stop_started = time.monotonic()
    await studio.stop(run_id)
    summary = await studio.wait(run_id)

    assert time.monotonic() - stop_started < 5
    assert summary.status == "stopped"
    rows = store.step_runs(run_id)
    assert rows["long"].status == "cancelled"
    assert "never" not in rows
    stopped = log.of_type(EventType.RUN_STOPPED, run_id)
    assert [event.data["cancelled"] for event in stopped] == [["long"]]

    call_started = time.monotonic()
    after = await server_info(shared_services)
    assert time.monotonic() - call_started < 2, "the server must serve a new call promptly after the cancel"
    assert after["pid"] == before["pid"]
    assert after["waits_running"] == 0
    assert after["waits_cancelled"] == before["waits_cancelled"] + 1  # type: ignore[operator]


async def test_stop_cancels_pending_tasks(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _ = engine
    workflow = build_workflow(
        [{"id": "approve", "type": "human_task", "config": {"title": "Go?"}}, lua_step("side", "return 1")]
    )

    run_id = await studio.run_workflow(workflow)
    assert (await studio.wait(run_id)).status == "waiting"
    task_id = store.list_tasks(run_id=run_id)[0].id
    await studio.stop(run_id)

    assert (await studio.wait(run_id)).status == "stopped"
    task = store.get_task(task_id)
    assert task.status == "cancelled"
    assert store.list_tasks(run_id=run_id) == []
    with pytest.raises(EngineError, match="already resolved"):
        await studio.resolve_task(task_id, "approve")


async def test_stop_paused_run(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    workflow = build_workflow(
        [
            mcp_step("slow", "wait", {"seconds": 0.2, "steps": 1}),
            lua_step("after", "return 1", {"x": "{{steps.slow.result}}"}),
        ]
    )

    run_id = await studio.run_workflow(workflow)
    await log.wait_type(EventType.STEP_STARTED, "slow")
    await studio.pause(run_id)
    assert (await studio.wait(run_id)).status == "paused"
    await studio.stop(run_id)

    assert (await studio.wait(run_id)).status == "stopped"
    assert store.get_run(run_id).finished_at is not None
    assert "after" not in store.step_runs(run_id)


async def test_paused_run_resumes_after_restart(make_engine: EngineFactory, store: Store) -> None:
    first, log = await make_engine()
    workflow = build_workflow(
        [
            mcp_step("slow", "wait", {"seconds": 0.2, "steps": 1}),
            lua_step("after", "return 7", {"x": "{{steps.slow.result}}"}),
        ]
    )
    run_id = await first.run_workflow(workflow)
    await log.wait_type(EventType.STEP_STARTED, "slow")
    await first.pause(run_id)
    assert (await first.wait(run_id)).status == "paused"
    await first.aclose()

    second, _ = await make_engine()
    assert await second.resume_interrupted() == []
    await second.resume(run_id)
    summary = await second.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"after": 7}


async def test_pause_during_fan_out(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    body = [mcp_step("nap", "wait", {"seconds": 0.2, "steps": 1})]
    workflow = build_workflow(
        [
            {"id": "fan", "type": "for_each", "config": {"items": [1, 2, 3, 4], "steps": body, "max_parallelism": 2}},
            lua_step("after", "return #items", {"items": "{{steps.fan.result.items}}"}),
        ]
    )

    run_id = await studio.run_workflow(workflow)
    await log.wait_type(EventType.STEP_STARTED, "fan[0].nap")
    await studio.pause(run_id)
    summary = await studio.wait(run_id)

    assert summary.status == "paused"
    rows = store.step_runs(run_id)
    assert rows["fan"].status == "running"
    assert {key for key, row in rows.items() if key.startswith("fan[")} <= {"fan[0].nap", "fan[1].nap"}
    assert all(row.status == "completed" for key, row in rows.items() if key.startswith("fan["))

    await studio.resume(run_id)
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"after": 4}


async def test_pause_with_waiting_task(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    workflow = build_workflow(
        [
            {"id": "approve", "type": "human_task", "config": {"title": "Go?"}},
            mcp_step("slow", "wait", {"seconds": 0.3, "steps": 1}),
            lua_step("after_slow", "return 1", {"x": "{{steps.slow.result}}"}),
        ]
    )

    run_id = await studio.run_workflow(workflow)
    await log.wait_type(EventType.STEP_STARTED, "slow")
    await studio.pause(run_id)
    assert (await studio.wait(run_id)).status == "paused"
    assert "after_slow" not in store.step_runs(run_id)

    task_id = store.list_tasks(run_id=run_id)[0].id
    await studio.resolve_task(task_id, "approve")
    await studio.resume(run_id)
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"approve": {"decision": "approve", "values": {}, "actor": "local user"}, "after_slow": 1}


async def test_wait_after_resolving_while_paused(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, _ = engine
    workflow = build_workflow(
        [
            {"id": "approve", "type": "human_task", "config": {"title": "Go?"}},
            lua_step("after", "return 1", {"x": "{{steps.approve.result}}"}),
        ]
    )
    run_id = await studio.run_workflow(workflow)
    assert (await studio.wait(run_id)).status == "waiting"
    await studio.pause(run_id)

    await studio.resolve_task(store.list_tasks(run_id=run_id)[0].id, "approve")
    summary = await asyncio.wait_for(studio.wait(run_id), 5)

    assert summary.status == "paused"
    assert store.step_runs(run_id)["approve"].status == "completed"
    assert "after" not in store.step_runs(run_id)
    await studio.resume(run_id)
    assert (await studio.wait(run_id)).status == "completed"


async def test_stop_interrupted_run_from_new_engine(make_engine: EngineFactory, store: Store) -> None:
    first, log = await make_engine()
    workflow = build_workflow([mcp_step("long", "wait", {"seconds": 30, "steps": 30}), lua_step("b", "return 1")])
    run_id = await first.run_workflow(workflow)
    await log.wait_type(EventType.STEP_STARTED, "long")
    await first.aclose()
    assert store.get_run(run_id).status == "running"

    second, _ = await make_engine()
    await second.stop(run_id)
    summary = await second.wait(run_id)

    assert summary.status == "stopped"
    run = store.get_run(run_id)
    assert run.status == "stopped"
    assert run.owner is None
    assert not second.is_live(run_id)
    assert store.step_runs(run_id)["long"].status in ("cancelled", "failed")


async def test_stop_right_after_start(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    run_id = await studio.run_workflow(build_workflow([lua_step("a", "return 1")]))

    await asyncio.wait_for(studio.stop(run_id), 5)
    summary = await asyncio.wait_for(studio.wait(run_id), 5)

    assert summary.status == "stopped"
    assert store.get_run(run_id).status == "stopped"
    assert [event.type for event in log.events if event.run_id == run_id][-1] == EventType.RUN_STOPPED


async def test_new_run_owned_from_creation(
    make_engine: EngineFactory, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process that resumes abandoned runs may look at the store at any moment, including
    # right after the run's row is written. The run must already be owned then.
    starting, _ = await make_engine()
    other, _ = await make_engine()
    seen_as_abandoned: list[str] = []
    create_run = store.create_run

    def create_and_look(*args: object, **kwargs: object) -> object:
        run = create_run(*args, **kwargs)  # type: ignore[arg-type]
        seen_as_abandoned.extend(orphan.id for orphan in other.interrupted_runs())
        return run

    monkeypatch.setattr(store, "create_run", create_and_look)
    run_id = await starting.run_workflow(build_workflow([lua_step("a", "return 1")]))
    summary = await starting.wait(run_id)

    assert seen_as_abandoned == []
    assert summary.status == "completed"
    assert store.get_run(run_id).owner is None  # released when it ended
