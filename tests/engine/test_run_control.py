"""control_run: pause, resume and stop a run that is live here, owned by another engine, or without owner."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import inspect

from studio.engine import Engine, EngineError, EventType
from studio.engine.control import ControlTimeout, control_run
from studio.model.workflow import Workflow
from studio.store import Store, open_store
from studio.store.database import create_sqlite_engine
from tests.conftest import EngineFactory, EventLog, build_workflow, lua_step, mcp_step

pytestmark = pytest.mark.asyncio(loop_scope="module")

FAST_POLL = {"control_poll_interval_s": 0.05}


def slow_workflow(seconds: float) -> Workflow:
    """slow (the tool server's wait) -> next (a Lua step reading its result)."""
    return build_workflow(
        [
            mcp_step("slow", "wait", {"seconds": seconds, "steps": 2}),
            lua_step("next", "return w", {"w": "{{steps.slow.result.waited_s}}"}),
        ]
    )


async def start_slow(owner: Engine, log: EventLog, seconds: float) -> str:
    run_id = await owner.run_workflow(slow_workflow(seconds))
    await log.wait_type(EventType.STEP_STARTED, "slow")
    return run_id


async def test_stop_live_run_reports_cancelled(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    run_id = await start_slow(studio, log, 30)

    outcome = await control_run(studio, run_id, "stop", timeout_s=10)

    assert (outcome.status, outcome.route) == ("stopped", "this process")
    assert outcome.cancelled == ["slow"]
    assert store.step_runs(run_id)["slow"].status == "cancelled"


async def test_pause_and_resume_through_owner(make_engine: EngineFactory, store: Store) -> None:
    owner, owner_log = await make_engine(**FAST_POLL)
    other, _other_log = await make_engine()
    run_id = await start_slow(owner, owner_log, 0.3)

    paused = await control_run(other, run_id, "pause", actor="tester", timeout_s=10)

    assert (paused.status, paused.route) == ("paused", "owner")
    assert owner.is_live(run_id)
    assert not other.is_live(run_id)
    assert store.step_runs(run_id)["slow"].status == "completed"
    assert store.get_run(run_id).requested_action is None, "the owner clears a request it applied"

    resumed = await control_run(other, run_id, "resume", timeout_s=10)
    summary = await owner.wait(run_id)

    assert resumed.route == "owner"
    assert resumed.status in ("running", "completed")
    assert summary.status == "completed", summary.error
    assert owner_log.of_type(EventType.RUN_RESUMED, run_id)


async def test_stop_through_owner_cancels_step(make_engine: EngineFactory, store: Store) -> None:
    owner, owner_log = await make_engine(**FAST_POLL)
    other, _other_log = await make_engine()
    run_id = await start_slow(owner, owner_log, 30)

    outcome = await control_run(other, run_id, "stop", timeout_s=10)

    assert (outcome.status, outcome.route) == ("stopped", "owner")
    assert outcome.cancelled == ["slow"]
    stopped = owner_log.of_type(EventType.RUN_STOPPED, run_id)
    assert [event.data["cancelled"] for event in stopped] == [["slow"]]
    assert not owner.is_live(run_id)


async def test_resume_unowned_paused_adopts(make_engine: EngineFactory, store: Store) -> None:
    first, first_log = await make_engine()
    run_id = await start_slow(first, first_log, 0.2)
    await first.pause(run_id)
    assert (await first.wait(run_id)).status == "paused"
    await first.aclose()
    assert store.get_run(run_id).owner is None
    second, second_log = await make_engine()

    outcome = await control_run(second, run_id, "resume", timeout_s=10)
    summary = await second.wait(run_id)

    assert outcome.route == "adopted"
    assert summary.status == "completed", summary.error
    assert second_log.of_type(EventType.RUN_COMPLETED, run_id)


async def test_stop_unowned_waiting_cancels_task(make_engine: EngineFactory, store: Store) -> None:
    first, _log = await make_engine()
    workflow = build_workflow(
        [lua_step("prep", "return 1"), {"id": "review", "type": "human_task", "config": {"title": "Check"}}]
    )
    run_id = await first.run_workflow(workflow)
    assert (await first.wait(run_id)).status == "waiting"
    await first.aclose()
    second, _second_log = await make_engine()

    outcome = await control_run(second, run_id, "stop", timeout_s=10)

    assert (outcome.status, outcome.route) == ("stopped", "adopted")
    assert outcome.cancelled == []
    assert [task.status for task in store.list_tasks(statuses=("cancelled",), run_id=run_id)] == ["cancelled"]
    assert store.list_tasks(run_id=run_id) == []


async def test_pause_unowned_waiting_run(make_engine: EngineFactory, store: Store) -> None:
    first, _log = await make_engine()
    workflow = build_workflow([{"id": "review", "type": "human_task", "config": {"title": "Check"}}])
    run_id = await first.run_workflow(workflow)
    assert (await first.wait(run_id)).status == "waiting"
    await first.aclose()
    second, _second_log = await make_engine()

    outcome = await control_run(second, run_id, "pause", timeout_s=10)

    assert outcome.route == "adopted"
    assert outcome.status in ("paused", "waiting")
    assert (await second.wait(run_id)).status == "paused"


async def test_control_rejects_wrong_status(engine: tuple[Engine, EventLog], store: Store) -> None:
    studio, log = engine
    done = await studio.run_workflow(build_workflow([lua_step("one", "return 1")]))
    await studio.wait(done)
    live = await start_slow(studio, log, 30)

    with pytest.raises(EngineError, match=r"already ended \(completed\); there is nothing to stop"):
        await control_run(studio, done, "stop")
    with pytest.raises(EngineError, match="is running, not paused"):
        await control_run(studio, live, "resume")
    with pytest.raises(EngineError, match="run action 'halt' is invalid"):
        await control_run(studio, live, "halt")
    await studio.pause(live)
    await studio.stop(live)


async def test_pause_timeout_when_owner_busy(make_engine: EngineFactory, store: Store) -> None:
    owner, owner_log = await make_engine(**FAST_POLL)
    other, _other_log = await make_engine()
    run_id = await start_slow(owner, owner_log, 30)

    with pytest.raises(ControlTimeout, match="accepted the pause and applies it once the running steps finish"):
        await control_run(other, run_id, "pause", timeout_s=0.5)

    assert store.get_run(run_id).status == "running"
    await owner.stop(run_id)


async def test_request_stays_when_owner_not_polling(make_engine: EngineFactory, store: Store) -> None:
    owner, owner_log = await make_engine(control_poll_interval_s=60, heartbeat_interval_s=60)
    other, _other_log = await make_engine()
    run_id = await start_slow(owner, owner_log, 30)

    with pytest.raises(ControlTimeout, match="has not read the request yet"):
        await control_run(other, run_id, "stop", timeout_s=0.3)

    run = store.get_run(run_id)
    assert (run.requested_action, run.requested_by) == ("stop", "local user")
    assert [request.action for request in store.run_requests(owner.owner)] == ["stop"]
    await owner.stop(run_id)


async def test_owner_gone_before_reading_request(make_engine: EngineFactory, store: Store) -> None:
    owner, owner_log = await make_engine(control_poll_interval_s=60, heartbeat_interval_s=60)
    other, _other_log = await make_engine()
    run_id = await start_slow(owner, owner_log, 30)
    stopping = asyncio.create_task(control_run(other, run_id, "stop", timeout_s=10))
    # One loop pass runs control_run up to its first wait, after it recorded the request.
    await asyncio.sleep(0)
    assert store.get_run(run_id).requested_action == "stop"

    await owner.aclose()
    outcome = await stopping

    assert (outcome.status, outcome.route) == ("stopped", "adopted")
    assert outcome.cancelled == ["slow"]
    assert store.get_run(run_id).requested_action is None


async def test_upgrade_from_first_schema(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from studio.store.database import MIGRATIONS_DIR

    path = tmp_path / "old.db"
    database = create_sqlite_engine(path)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with database.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.exec_driver_sql(
            "INSERT INTO workspaces (id, slug, name, created_at) VALUES ('w', 'old', 'Old workspace', 0)"
        )
    database.dispose()

    upgraded = open_store(path)
    try:
        columns = {column["name"] for column in inspect(upgraded.engine).get_columns("runs")}
        step_columns = {column["name"] for column in inspect(upgraded.engine).get_columns("step_runs")}
        tables = set(inspect(upgraded.engine).get_table_names())
        workflow = build_workflow([lua_step("one", "return 1")])
        version = upgraded.publish_workflow(workflow)
    finally:
        upgraded.close()

    assert {"requested_action", "requested_at", "requested_by", "is_test"} <= columns
    assert {"reused_from", "pinned"} <= step_columns
    assert "step_pins" in tables
    assert (version.kind, version.number) == ("published", 1)
