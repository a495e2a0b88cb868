"""``studio runs pause|resume|stop|rerun|show|compare`` as subprocesses, against runs owned by other processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from studio.engine import Engine, EventType
from studio.store import Store, open_store
from tests.conftest import (
    REPO_ROOT,
    EventLog,
    build_workflow,
    cli_env,
    lua_step,
    mcp_step,
    run_cli,
    workflow_document,
)

pytestmark = pytest.mark.slow


def write_workflow(tmp_path: Path, steps: list[dict[str, Any]], edges: list[tuple[str, str]] | None = None) -> Path:
    path = tmp_path / "flow.workflow.json"
    document = workflow_document(steps, edges, inputs={"factor": {"type": "number", "default": 1}})
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def slow_steps(seconds: float) -> list[dict[str, Any]]:
    """slow (the tool server's wait, one progress step per second) and next, which reads its result."""
    steps = max(1, int(seconds))
    return [
        mcp_step("slow", "wait", {"seconds": seconds, "steps": steps}),
        lua_step("next", "return w", {"w": "{{steps.slow.result.waited_s}}"}),
    ]


@contextmanager
def cli_process(db: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Start ``python -m studio --db DB ARGS`` with piped output; kill it if the test leaves it running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "studio", "--db", str(db), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=REPO_ROOT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def read_event(process: subprocess.Popen[str], condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Read ``--json`` lines of ``process`` until one matches ``condition``; fail if the output ends first."""
    assert process.stdout is not None
    for line in process.stdout:
        event = json.loads(line)
        if condition(event):
            return event
    raise AssertionError(f"the process ended (exit {process.wait()}) before the expected event")


def step_started(step_key: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event.get("type") == "step_started" and event.get("step_key") == step_key


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# -- a run owned by a `studio run` process ----------------------------------------------------------


def test_stop_cli_run_from_other_process(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    workflow = write_workflow(tmp_path, slow_steps(30))
    with cli_process(db, "run", str(workflow), "--json") as owner:
        run_id = read_event(owner, step_started("slow"))["run_id"]

        stopped = run_cli(db, "runs", "stop", run_id[:8])

        assert stopped.returncode == 0, stopped.stderr
        assert f"Run {run_id} is stopped (stop applied by the process executing it)." in stopped.stdout
        assert "Cancelled steps: slow" in stopped.stdout
        output, _errors = owner.communicate(timeout=30)
        assert owner.returncode == 3
        summary = json_lines(output)[-1]
        assert (summary["type"], summary["status"]) == ("summary", "stopped")

    shown = run_cli(db, "runs", "show", run_id, "--json")
    payload = json.loads(shown.stdout)
    assert [(step["step_key"], step["status"]) for step in payload["steps"]] == [("slow", "cancelled")]
    stop_events = [event for event in payload["events"] if event["type"] == "run_stopped"]
    assert [event["data"]["cancelled"] for event in stop_events] == [["slow"]]


def test_pause_cli_run_then_resume_here(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    workflow = write_workflow(tmp_path, slow_steps(4))
    with cli_process(db, "run", str(workflow), "--json") as owner:
        run_id = read_event(owner, step_started("slow"))["run_id"]

        paused = run_cli(db, "runs", "pause", run_id)

        assert paused.returncode == 0, paused.stderr
        assert f"Run {run_id} is paused (pause applied by the process executing it)." in paused.stdout
        owner.communicate(timeout=30)
        assert owner.returncode == 5, "studio run exits 5 when its run pauses"

    # The run has no owner now, so this process adopts it and follows it to the end.
    resumed = run_cli(db, "runs", "resume", run_id, "--json")

    assert resumed.returncode == 0, resumed.stderr
    lines = json_lines(resumed.stdout)
    assert (lines[-1]["status"], lines[-1]["result"]) == ("completed", {"next": 4})
    assert [line["type"] for line in lines if line["type"] in ("run_resumed", "run_completed")] == [
        "run_resumed",
        "run_completed",
    ]
    assert not any(line.get("step_key") == "slow" and line["type"] == "step_started" for line in lines)


# -- a run owned by an engine in this test process --------------------------------------------------


async def start_owned_run(store: Store, seconds: float, **options: Any) -> tuple[Engine, EventLog, str]:
    engine = Engine(store, **options)
    log = EventLog()
    engine.add_listener(log)
    run_id = await engine.run_workflow(build_workflow(slow_steps(seconds)))
    await log.wait_type(EventType.STEP_STARTED, "slow")
    return engine, log, run_id


async def test_pause_resume_through_owner_engine(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    store = open_store(db)
    engine, log, run_id = await start_owned_run(store, 4, control_poll_interval_s=0.05)
    try:
        paused = await asyncio.to_thread(run_cli, db, "runs", "pause", run_id, "--json")

        assert paused.returncode == 0, paused.stderr
        outcome = json_lines(paused.stdout)[-1]
        assert (outcome["type"], outcome["status"], outcome["route"]) == ("control", "paused", "owner")
        assert engine.is_live(run_id)

        resumed = await asyncio.to_thread(run_cli, db, "runs", "resume", run_id)
        summary = await engine.wait(run_id)

        assert resumed.returncode == 0, resumed.stderr
        assert "resume applied by the process executing it" in resumed.stdout
        assert summary.status == "completed", summary.error
        assert log.of_type(EventType.RUN_RESUMED, run_id)
    finally:
        await engine.aclose()
        store.close()


async def test_stop_times_out_when_owner_not_polling(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    store = open_store(db)
    engine, _log, run_id = await start_owned_run(store, 30, control_poll_interval_s=60, heartbeat_interval_s=60)
    try:
        stopped = await asyncio.to_thread(run_cli, db, "runs", "stop", run_id, "--timeout", "0.5")

        assert stopped.returncode == 6
        assert "has not read the request yet" in stopped.stderr
        shown = await asyncio.to_thread(run_cli, db, "runs", "show", run_id)
        assert "stop requested by cli user, not applied yet" in shown.stdout
        assert store.get_run(run_id).status == "running"
    finally:
        await engine.stop(run_id)
        await engine.aclose()
        store.close()


def test_control_rejects_ended_and_unknown_runs(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    workflow = write_workflow(tmp_path, [lua_step("one", "return 1")])
    finished = run_cli(db, "run", str(workflow), "--json")
    run_id = json_lines(finished.stdout)[-1]["run_id"]

    stop = run_cli(db, "runs", "stop", run_id)
    resume = run_cli(db, "runs", "resume", run_id)
    unknown = run_cli(db, "runs", "pause", "feedbeef")

    assert stop.returncode == 2
    assert f"error: run {run_id} already ended (completed); there is nothing to stop" in stop.stderr
    assert resume.returncode == 2
    assert "already ended (completed); there is nothing to resume" in resume.stderr
    assert unknown.returncode == 2
    assert "run 'feedbeef' was not found" in unknown.stderr


# -- re-run, show and compare -----------------------------------------------------------------------


def three_step_workflow(tmp_path: Path) -> Path:
    """base -> scaled (base times the input factor), and an independent 'label'."""
    return write_workflow(
        tmp_path,
        [
            lua_step("base", "return 10"),
            lua_step("scaled", "return b * f", {"b": "{{steps.base.result}}", "f": "{{input.factor}}"}),
            lua_step("label", "return 'fixed'"),
        ],
    )


def test_rerun_show_and_compare(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    workflow = three_step_workflow(tmp_path)
    first_id = json_lines(run_cli(db, "run", str(workflow), "--json").stdout)[-1]["run_id"]

    rerun = run_cli(db, "runs", "rerun", first_id, "--from", "scaled", "--json")

    assert rerun.returncode == 0, rerun.stderr
    lines = json_lines(rerun.stdout)
    second_id = lines[-1]["run_id"]
    assert lines[-1]["status"] == "completed"
    reused = sorted(line["step_key"] for line in lines[:-1] if line["data"].get("reused_from") == first_id)
    assert reused == ["base", "label"]
    started = [line["step_key"] for line in lines[:-1] if line["type"] == "step_started"]
    assert started == ["scaled"]

    shown = run_cli(db, "runs", "show", second_id)
    assert shown.returncode == 0, shown.stderr
    assert f"re-run of {first_id}" in shown.stdout
    assert f"reused from run {first_id[:8]}" in shown.stdout
    shown_json = json.loads(run_cli(db, "runs", "show", second_id, "--json").stdout)
    assert shown_json["run"]["parent_run_id"] == first_id
    assert {step["step_key"]: step["reused_from"] for step in shown_json["steps"]} == {
        "base": first_id,
        "label": first_id,
        "scaled": None,
    }

    listed = json.loads(run_cli(db, "runs", "--json").stdout)
    assert {row["id"]: row["parent_run_id"] for row in listed} == {first_id: None, second_id: first_id}

    same = run_cli(db, "runs", "compare", first_id, second_id)
    assert same.returncode == 0, same.stderr
    assert "0 of 3 step(s) differ." in same.stdout

    third_id = json_lines(run_cli(db, "run", str(workflow), "--input", "factor=3", "--json").stdout)[-1]["run_id"]
    different = run_cli(db, "runs", "compare", first_id, third_id)
    assert different.returncode == 1
    assert "$: 10 -> 30" in different.stdout
    as_json = json.loads(run_cli(db, "runs", "compare", first_id, third_id, "--json").stdout)
    changed = {step["step_key"]: step["changes"] for step in as_json["steps"] if not step["output_equal"]}
    assert changed == {"scaled": [{"path": "$", "change": "changed", "a": 10, "b": 30}]}


def test_rerun_and_compare_reject_bad_input(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    first_id = json_lines(run_cli(db, "run", str(three_step_workflow(tmp_path)), "--json").stdout)[-1]["run_id"]
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = write_workflow(other_dir, [lua_step("one", "return 1")])
    other_id = json_lines(run_cli(db, "run", str(other), "--json").stdout)[-1]["run_id"]

    unknown_step = run_cli(db, "runs", "rerun", first_id, "--from", "nope")
    mixed = run_cli(db, "runs", "compare", first_id, other_id)

    assert unknown_step.returncode == 2
    assert "step 'nope' does not exist" in unknown_step.stderr
    assert "choose one of: base, scaled, label" in unknown_step.stderr
    assert mixed.returncode == 2
    assert "belong to different workflows" in mixed.stderr
