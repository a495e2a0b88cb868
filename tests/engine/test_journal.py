"""The journal's commits: every announced event is durable first, in order, also from the writer thread."""

from __future__ import annotations

import threading
from pathlib import Path

from studio.engine import Engine
from studio.engine.events import RunEvent
from studio.store import open_store
from tests.conftest import build_workflow, for_each_step, lua_step


async def test_fan_out_events_durable_before_announced(tmp_path: Path) -> None:
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
    # Parallel items fill batches large enough for the writer thread.
    assert journal_threads
    journaled = [event for event in announced if not event.is_ephemeral]
    assert [event.seq for event in journaled] == sorted(event.seq for event in journaled)
    assert all(stored_seq >= event.seq for stored_seq, event in zip(stored_at_announce, journaled, strict=True))
    assert [row["seq"] for row in stored] == [event.seq for event in journaled]


async def test_sequential_steps_commit_inline(tmp_path: Path) -> None:
    store = open_store(tmp_path / "inline.db")
    engine = Engine(store)
    late: list[int] = []

    def listen(event: RunEvent) -> None:
        if not event.is_ephemeral and store.last_event_seq(event.run_id) < event.seq:
            late.append(event.seq)

    engine.add_listener(listen)
    try:
        steps = [lua_step("s0", "return 1")]
        steps += [
            lua_step(f"s{index}", "return v + 1", {"v": f"{{{{steps.s{index - 1}.result}}}}"}) for index in range(1, 20)
        ]
        version = store.publish_workflow(build_workflow(steps))
        run_id = await engine.start_run(version.id, {})
        summary = await engine.wait(run_id)
        step_runs = store.step_runs(run_id)
    finally:
        await engine.aclose()
        store.close()

    assert summary.status == "completed"
    assert late == []
    assert step_runs["s19"].result == 20
    assert all(record.status == "completed" for record in step_runs.values())
