"""The journal's commits: every announced event is durable first, in order, also from the writer thread."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from studio.engine import Engine
from studio.engine import journal as journal_module
from studio.engine.events import EventType, RunEvent
from studio.engine.executors_api import ExecutorServices
from studio.store import JournalBatch, Store, open_store
from tests.conftest import append_step, build_workflow, for_each_step, lua_step


async def test_fan_out_events_durable_before_announced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small batches normally commit on the loop's thread; send them to the writer thread to test it.
    monkeypatch.setattr(journal_module, "BACKGROUND_COMMIT_ROWS", 8)
    store = open_store(tmp_path / "journal.db")
    engine = Engine(store)
    announced: list[RunEvent] = []
    stored_at_announce: list[int] = []

    def listen(event: RunEvent) -> None:
        announced.append(event)
        if not event.is_ephemeral:
            stored_at_announce.append(store.last_event_seq(event.run_id))

    engine.add_listener(listen)
    workflow = build_workflow(
        [
            for_each_step(
                "loop", "{{input.items}}", [lua_step("double", "return x * 2", {"x": "{{item}}"})], max_parallelism=16
            )
        ],
        inputs={"items": {"type": "array"}},
    )
    try:
        version = store.publish_workflow(workflow)
        run_id = await engine.start_run(version.id, {"items": list(range(300))})
        summary = await engine.wait(run_id)
        journal_threads = [thread.name for thread in threading.enumerate() if thread.name.startswith("studio-journal")]
        stored = store.events(run_id)
    finally:
        await engine.aclose()
        store.close()

    assert summary.status == "completed"
    assert summary.result == {"loop": {"items": [value * 2 for value in range(300)], "errors": []}}
    assert journal_threads
    journaled = [event for event in announced if not event.is_ephemeral]
    assert [event.seq for event in journaled] == sorted(event.seq for event in journaled)
    assert all(stored_seq >= event.seq for stored_seq, event in zip(stored_at_announce, journaled, strict=True))
    assert [row["seq"] for row in stored] == [event.seq for event in journaled]


class CommitCounter:
    """Counts the journal's transactions on a real store by wrapping its two commit methods."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        inline, background = store.commit, store.commit_in_background

        def commit(batch: JournalBatch) -> None:
            self.count += 1
            inline(batch)

        def commit_in_background(batch: JournalBatch) -> Future[None]:
            self.count += 1
            return background(batch)

        store.commit = commit  # type: ignore[method-assign]
        store.commit_in_background = commit_in_background  # type: ignore[method-assign]


def chain(length: int) -> list[dict[str, Any]]:
    steps = [lua_step("s0", "return 1")]
    steps += [
        lua_step(f"s{index}", "return v + 1", {"v": f"{{{{steps.s{index - 1}.result}}}}"}) for index in range(1, length)
    ]
    return steps


async def test_pure_steps_share_commits(tmp_path: Path) -> None:
    store = open_store(tmp_path / "lazy.db")
    engine = Engine(store)
    late: list[int] = []

    def listen(event: RunEvent) -> None:
        if not event.is_ephemeral and store.last_event_seq(event.run_id) < event.seq:
            late.append(event.seq)

    engine.add_listener(listen)
    try:
        version = store.publish_workflow(build_workflow(chain(200)))
        counter = CommitCounter(store)
        run_id = await engine.start_run(version.id, {})
        summary = await engine.wait(run_id)
        step_runs = store.step_runs(run_id)
    finally:
        await engine.aclose()
        store.close()

    assert summary.status == "completed"
    assert late == []
    assert step_runs["s199"].result == 200
    assert all(record.status == "completed" for record in step_runs.values())
    # One transaction per step would be 200; Lua steps start before their records are committed.
    assert counter.count < 100, f"{counter.count} commits for 200 Lua steps"


async def test_effect_step_waits_for_commit(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    store = open_store(tmp_path / "effects.db")
    services = ExecutorServices(store, environ={**os.environ, "STUDIO_TOOLS_ROOT": str(root)})
    engine = Engine(store, services=services)
    seen_at_call: dict[str, Any] = {}
    call_tool = services.mcp.call_tool

    async def recording_call_tool(*args: Any, **kwargs: Any) -> Any:
        # A second connection reads only committed rows.
        with sqlite3.connect(tmp_path / "effects.db") as reader:
            rows = reader.execute("SELECT step_key, status FROM step_runs").fetchall()
        seen_at_call["statuses"] = dict(rows)
        return await call_tool(*args, **kwargs)

    services.mcp.call_tool = recording_call_tool  # type: ignore[method-assign]
    steps = [
        *chain(30),
        append_step("act", "out.txt", "total {{steps.s29.result}}"),
    ]
    try:
        version = store.publish_workflow(build_workflow(steps))
        run_id = await engine.start_run(version.id, {})
        summary = await engine.wait(run_id)
    finally:
        await engine.aclose()
        store.close()

    assert summary.status == "completed", summary.error
    assert (root / "out.txt").read_text(encoding="utf-8") == "total 30\n"
    statuses = seen_at_call["statuses"]
    assert all(statuses[f"s{index}"] == "completed" for index in range(30)), statuses
    assert statuses["act"] == "running"


async def test_effect_step_completion_committed_before_chain(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    store = open_store(tmp_path / "chain.db")
    services = ExecutorServices(store, environ={**os.environ, "STUDIO_TOOLS_ROOT": str(root)})
    engine = Engine(store, services=services)
    act_status_at_lua: list[str | None] = []
    run_lua = services.lua.run

    async def recording_run(*args: Any, **kwargs: Any) -> Any:
        # The Lua steps after the MCP step run in the same task; the MCP step's end must be
        # committed before the first of them starts.
        if not act_status_at_lua:
            with sqlite3.connect(tmp_path / "chain.db") as reader:
                row = reader.execute("SELECT status FROM step_runs WHERE step_key = 'act'").fetchone()
            act_status_at_lua.append(None if row is None else row[0])
        return await run_lua(*args, **kwargs)

    services.lua.run = recording_run  # type: ignore[method-assign]
    steps = [append_step("act", "out.txt", "once")]
    steps += [lua_step("s0", "return 1", {"after": "{{steps.act.result}}"})]
    steps += [
        lua_step(f"s{index}", "return v + 1", {"v": f"{{{{steps.s{index - 1}.result}}}}"}) for index in range(1, 300)
    ]
    try:
        version = store.publish_workflow(build_workflow(steps))
        run_id = await engine.start_run(version.id, {})
        summary = await engine.wait(run_id)
    finally:
        await engine.aclose()
        store.close()

    assert summary.status == "completed", summary.error
    assert act_status_at_lua == ["completed"]


async def test_long_lua_chain_yields_to_loop_and_stop(tmp_path: Path) -> None:
    store = open_store(tmp_path / "long.db")
    engine = Engine(store)
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.002)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.ensure_future(tick())
    first_completed = asyncio.Event()
    engine.add_listener(lambda event: first_completed.set() if event.type == EventType.STEP_COMPLETED else None)
    try:
        version = store.publish_workflow(build_workflow(chain(20_000)))
        run_id = await engine.start_run(version.id, {})
        # Setting up a run of 20,000 steps blocks the loop once; measure only while steps run.
        await asyncio.wait_for(first_completed.wait(), 30)
        gaps.clear()
        await asyncio.sleep(0.2)
        # Only the steps running count: stopping and reading rows below block the loop briefly.
        gaps_while_running = list(gaps)
        stop_requested_at = time.monotonic()
        await engine.stop(run_id)
        summary = await engine.wait(run_id)
        stopped_after = time.monotonic() - stop_requested_at
        completed = sum(1 for record in store.step_runs(run_id).values() if record.status == "completed")
    finally:
        ticker.cancel()
        await engine.aclose()
        store.close()

    assert summary.status == "stopped"
    assert stopped_after < 1.0
    assert 0 < completed < 20_000
    # Without yields the chain held the loop for seconds; the margin allows for a loaded machine.
    assert gaps_while_running
    assert max(gaps_while_running) < 0.25, f"the event loop was blocked for {max(gaps_while_running):.3f} s"
