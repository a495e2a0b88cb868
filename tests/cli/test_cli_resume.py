"""``studio resume`` and the other engine commands on a database holding an interrupted run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from studio.engine import Engine, EventType
from studio.store import Store, open_store
from tests.conftest import EventLog, build_workflow, lua_step, mcp_step, run_cli

pytestmark = pytest.mark.slow


async def leave_interrupted_run(db: Path) -> str:
    """Start a run in this process and detach while its wait step runs, as a closed window would."""
    store = open_store(db)
    engine = Engine(store)
    log = EventLog()
    engine.add_listener(log)
    try:
        workflow = build_workflow(
            [
                mcp_step("pause", "wait", {"seconds": 0.3, "steps": 3}, retry={"max_attempts": 2}),
                lua_step("done", "return w", {"w": "{{steps.pause.result.waited_s}}"}),
            ]
        )
        run_id = await engine.run_workflow(workflow)
        await log.wait_type(EventType.STEP_STARTED, "pause")
    finally:
        await engine.aclose()
        store.close()
    return run_id


def journal_and_attempt(db: Path, run_id: str) -> tuple[list[str], int]:
    store: Store = open_store(db)
    try:
        return [row["type"] for row in store.events(run_id)], store.step_runs(run_id)["pause"].attempt
    finally:
        store.close()


async def test_bad_command_leaves_interrupted_run(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    run_id = await leave_interrupted_run(db)
    before = journal_and_attempt(db, run_id)
    assert before[1] == 1
    missing_file = tmp_path / "missing.workflow.json"

    for _ in range(2):
        failed = await asyncio.to_thread(run_cli, db, "run", str(missing_file))
        assert failed.returncode == 2
        assert "was not found; check the path" in failed.stderr
        assert journal_and_attempt(db, run_id) == before, "a rejected command must not touch other runs"

    resumed = await asyncio.to_thread(run_cli, db, "resume", "--json")

    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.splitlines()[-1])
    assert (summary["run_id"], summary["status"], summary["result"]) == (run_id, "completed", {"done": 0.3})
    assert f"Resuming interrupted run {run_id}" in resumed.stderr
    types, attempt = journal_and_attempt(db, run_id)
    assert attempt == 2
    assert types.count("run_resumed") == 1
