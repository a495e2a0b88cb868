"""Crash and resume of runs whose Lua steps start before their records are committed.

A pure step (``lua_script``) may run ahead of the journal, so a kill can lose its start or its
completion. These tests kill real ``studio run`` processes and check that ``studio resume`` still
reaches the result a run without a crash gives, and that an interrupted pure step runs again even
when its retry policy allows one attempt only.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from studio.store import open_store
from tests.conftest import cli_env, lua_step, workflow_document
from tests.engine.test_durability import _kill_group, _start

SLOW_LOOP = 120_000_000
"""Iterations of the slow step's loop: about a second of Lua on the development machine."""

CHAIN = 300


def pure_workflow() -> dict[str, Any]:
    """s0 .. s299, each adding one to the previous result, with a slow step in the middle."""
    steps = [lua_step("s0", "return 1")]
    edges = []
    for index in range(1, CHAIN):
        previous = f"s{index - 1}"
        if index == CHAIN // 2:
            steps.append(
                lua_step(
                    "slow",
                    "local t = 0 for i = 1, n do t = t + 1 end return v + t - n + 1",
                    {"v": f"{{{{steps.{previous}.result}}}}", "n": SLOW_LOOP},
                    timeout_s=60,
                )
            )
            edges.append((previous, "slow"))
            previous = "slow"
        steps.append(lua_step(f"s{index}", "return v + 1", {"v": f"{{{{steps.{previous}.result}}}}"}))
        edges.append((previous, f"s{index}"))
    return workflow_document(steps, edges, name="Pure chain")


def kill_then_resume(tmp_path: Path, kill_after: tuple[str, str]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Run the chain, SIGKILL it once the event (type, step_key) is printed, then resume it."""
    workflow_file = tmp_path / "pure.workflow.json"
    workflow_file.write_text(json.dumps(pure_workflow()), encoding="utf-8")
    db = tmp_path / "studio.db"
    env = cli_env()
    process = _start(["--db", str(db), "run", str(workflow_file), "--json"], env, stdout=subprocess.PIPE)
    run_id = ""
    try:
        assert process.stdout is not None
        for line in process.stdout:
            event = json.loads(line)
            run_id = run_id or event["run_id"]
            if (event["type"], event.get("step_key")) == kill_after:
                break
        else:
            raise AssertionError(f"the run ended before the kill point; stderr: {process.communicate()[1]}")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        _kill_group(process.pid)

    store = open_store(db)
    try:
        statuses = {key: row.status for key, row in store.step_runs(run_id).items()}
    finally:
        store.close()
    resumed = _start(["--db", str(db), "resume", "--json"], env, stdout=subprocess.PIPE)
    try:
        stdout, stderr = resumed.communicate(timeout=120)
    finally:
        _kill_group(resumed.pid)
    assert resumed.returncode == 0, stderr
    return statuses, [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_interrupted_lua_step_runs_again(tmp_path: Path) -> None:
    statuses, lines = kill_then_resume(tmp_path, ("step_started", "slow"))

    assert statuses["slow"] == "running", "the slow step's start was announced, so it was committed"
    summary = lines[-1]
    assert summary["status"] == "completed", summary.get("error")
    assert summary["result"] == {f"s{CHAIN - 1}": CHAIN + 1}
    retried = [line for line in lines if line["type"] == "step_retrying" and line["step_key"] == "slow"]
    assert [line["data"]["error"]["kind"] for line in retried] == ["interrupted"]


def test_kill_mid_chain_same_result(tmp_path: Path) -> None:
    statuses, lines = kill_then_resume(tmp_path, ("step_completed", "s40"))

    assert statuses.get("s40") == "completed"
    summary = lines[-1]
    assert summary["status"] == "completed", summary.get("error")
    assert summary["result"] == {f"s{CHAIN - 1}": CHAIN + 1}
    completed = {line["step_key"] for line in lines if line["type"] == "step_completed"}
    assert "s40" not in completed, "a completion that was announced before the kill is durable and not run again"
    assert f"s{CHAIN - 1}" in completed
