"""Runs left behind by a closed or crashed studio continue when a window's controller starts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import qasync
from pytestqt.qtbot import QtBot

from studio.app.main_window import MainWindow
from studio.engine import Engine, EventType
from studio.model.document import workflow_from_data
from studio.store import open_store


def test_interrupted_run_resumed_on_start(qtbot: QtBot, tmp_path: Path, qasync_loop: qasync.QEventLoop) -> None:
    database = tmp_path / "studio.db"
    workflow = workflow_from_data(
        {
            "schema_version": 1,
            "name": "Left behind",
            "steps": [
                {"id": "first", "type": "lua_script", "config": {"source": "return 41"}},
                {
                    "id": "second",
                    "type": "lua_script",
                    "retry": {"max_attempts": 2, "backoff_base_s": 0},
                    # Long enough (about 0.2 s) to be still running when its start is announced.
                    "config": {
                        "source": "local t = 0 for i = 1, 30000000 do t = t + 1 end return n + 1",
                        "inputs": {"n": "{{steps.first.result}}"},
                    },
                },
            ],
        }
    )

    async def leave_run_behind() -> str:
        store = open_store(database)
        engine = Engine(store)
        started = asyncio.Event()
        engine.add_listener(
            lambda event: started.set()
            if event.type == EventType.STEP_STARTED and event.step_id == "second"
            else None
        )
        run_id = await engine.run_workflow(workflow)
        await started.wait()
        await engine.aclose()  # detaches: the run stays "running" with no owner
        store.close()
        return run_id

    run_id = qasync_loop.run_until_complete(leave_run_behind())
    assert open_store(database).get_run(run_id).status == "running"

    window = MainWindow(store_path=database)
    qtbot.addWidget(window)

    async def start_window() -> str:
        resumed = await window.controller.resume_interrupted()
        assert resumed == [run_id]
        engine = window.controller.engine
        assert engine is not None
        summary = await engine.wait(run_id)
        await window.aclose()
        return summary.status

    assert qasync_loop.run_until_complete(start_window()) == "completed"
    store = open_store(database)
    steps = store.step_runs(run_id)
    assert steps["first"].attempt == 1
    assert steps["second"].status == "completed"
    assert steps["second"].result == 42
    assert any(event["type"] == "run_resumed" for event in store.events(run_id))
