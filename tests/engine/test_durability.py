"""Crash and resume: a real ``studio run`` process is killed with SIGKILL, then ``studio resume`` finishes the run.

Every step that appends a line does so through the studio tool server's ``file_append_line``, so the
file records each execution. A step completed before the kill must have exactly one line. A step in
flight at the kill may have run twice, because its retry policy restarts it. Every other step has one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from studio.store import open_store
from tests.conftest import (
    REPO_ROOT,
    append_step,
    cli_env,
    count_lines,
    for_each_step,
    lua_step,
    mcp_step,
    workflow_document,
)

pytestmark = pytest.mark.slow

LOG = "log.txt"
FAN_ITEMS = 4
APPEND_LINES = ["s1", "s2", "s3", *(f"fan-{index}" for index in range(FAN_ITEMS))]
EXPECTED_RESULT = {"final": {"count": FAN_ITEMS, "waited": 0.6, "path": LOG}}

JsonLine = dict[str, Any]


def durable_workflow(hold_attempts: int = 3) -> dict[str, Any]:
    """s1 -> s2 -> hold (a 0.6 s wait) -> fan (4 items: append, then a 0.2 s wait) -> s3 -> final."""
    retry = {"max_attempts": 3, "backoff_base_s": 0.05, "jitter": 0.0}
    body = [
        append_step("mark", LOG, "fan-{{index}}", retry=retry),
        mcp_step("nap", "wait", {"seconds": 0.2, "steps": 2}, retry=retry),
    ]
    steps = [
        append_step("s1", LOG, retry=retry),
        append_step("s2", LOG, retry=retry),
        mcp_step("hold", "wait", {"seconds": 0.6, "steps": 6}, retry={**retry, "max_attempts": hold_attempts}),
        for_each_step(
            "fan",
            list(range(FAN_ITEMS)),
            body,
            max_parallelism=2,
            edges=[{"source": "mark", "target": "nap"}],
            output="nap",
        ),
        append_step("s3", LOG, retry=retry),
        lua_step(
            "final",
            "return {count = #fan, waited = waited, path = path}",
            {
                "fan": "{{steps.fan.result.items}}",
                "waited": "{{steps.hold.result.waited_s}}",
                "path": "{{steps.s3.result.path}}",
            },
        ),
    ]
    edges = [("s1", "s2"), ("s2", "hold"), ("hold", "fan"), ("fan", "s3")]
    return workflow_document(steps, edges, name="Durability")


@dataclass
class Crash:
    """A killed ``studio run`` and the ``studio resume`` after it, with the store's state in between."""

    db: Path
    root: Path
    run_id: str
    seen: list[JsonLine]
    """Lines the killed process printed before the kill."""
    statuses: dict[str, str]
    """Step statuses in the store right after the kill."""
    journal_before: list[tuple[int, str]]
    """(seq, type) of the journal right after the kill."""
    resume_exit: int
    resume_lines: list[JsonLine]
    resume_stderr: str


@dataclass(frozen=True)
class Scenario:
    kill_when: Callable[[list[JsonLine]], bool]
    hold_attempts: int = 3


def _start(args: list[str], env: dict[str, str], *, stdout: int | None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "studio", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        start_new_session=True,
    )


def _kill_group(pid: int) -> None:
    # Each studio process leads its own session, so this reaches it and its tool server only.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def crash_and_resume(base: Path, scenario: Scenario) -> Crash:
    """Run the durability workflow, SIGKILL the process at the scenario's point, then resume it."""
    root = base / "root"
    root.mkdir()
    workflow_file = base / "durable.workflow.json"
    workflow_file.write_text(json.dumps(durable_workflow(scenario.hold_attempts)), encoding="utf-8")
    db = base / "studio.db"
    env = cli_env(STUDIO_TOOLS_ROOT=str(root))

    process = _start(["--db", str(db), "run", str(workflow_file), "--json"], env, stdout=subprocess.PIPE)
    seen: list[JsonLine] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(json.loads(line))
            if scenario.kill_when(seen):
                break
        else:
            raise AssertionError(f"the run ended before the kill point; stderr: {process.communicate()[1]}")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        # The tool server would exit by itself once its stdin closes. End it now, so no late call of
        # the killed run can touch the file while the resumed run executes.
        _kill_group(process.pid)

    store = open_store(db)
    try:
        run_id = seen[0]["run_id"]
        statuses = {key: row.status for key, row in store.step_runs(run_id).items()}
        journal_before = [(row["seq"], row["type"]) for row in store.events(run_id)]
        assert store.get_run(run_id).status == "running"
    finally:
        store.close()

    resumed = _start(["--db", str(db), "resume", "--json"], env, stdout=subprocess.PIPE)
    try:
        stdout, stderr = resumed.communicate(timeout=60)
    finally:
        _kill_group(resumed.pid)
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return Crash(db, root, run_id, seen, statuses, journal_before, resumed.returncode, lines, stderr)


def completed_count(count: int) -> Callable[[list[JsonLine]], bool]:
    return lambda seen: sum(1 for event in seen if event["type"] == "step_completed") >= count


def hold_in_progress(seen: list[JsonLine]) -> bool:
    return any(event["type"] == "step_progress" and event["step_key"] == "hold" for event in seen)


def fan_half_done(seen: list[JsonLine]) -> bool:
    naps = [event for event in seen if event["type"] == "step_completed" and event["step_id"] == "nap"]
    return len(naps) >= 2


SCENARIOS = {
    "after_two_steps": Scenario(completed_count(2)),
    "during_wait": Scenario(hold_in_progress),
    "during_fan_out": Scenario(fan_half_done),
    "no_retries_left": Scenario(hold_in_progress, hold_attempts=1),
}


@pytest.fixture(scope="module")
def crashes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Crash]:
    """Every scenario crashed and resumed, side by side in threads to keep the module fast."""
    bases = {name: tmp_path_factory.mktemp(name) for name in SCENARIOS}
    with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
        futures = {name: pool.submit(crash_and_resume, bases[name], SCENARIOS[name]) for name in SCENARIOS}
        return {name: future.result() for name, future in futures.items()}


def line_name(step_key: str) -> str | None:
    """The line a step appends, or None for steps that append nothing."""
    if step_key in ("s1", "s2", "s3"):
        return step_key
    if step_key.startswith("fan[") and step_key.endswith("].mark"):
        return f"fan-{step_key[4:-6]}"
    return None


def in_flight_keys(crash: Crash) -> set[str]:
    return {key for key, status in crash.statuses.items() if status in ("running", "retrying")}


def check_summary_completed(crash: Crash) -> None:
    assert crash.resume_exit == 0, crash.resume_stderr
    summary = crash.resume_lines[-1]
    assert summary["type"] == "summary"
    assert summary["run_id"] == crash.run_id
    assert summary["status"] == "completed", summary["error"]
    assert summary["result"] == EXPECTED_RESULT
    assert any(event["type"] == "run_resumed" for event in crash.resume_lines)


def check_executions(crash: Crash) -> None:
    """Completed before the kill: one line; in flight: one or two; not started yet: one."""
    counts = count_lines(crash.root / LOG)
    assert set(counts) == set(APPEND_LINES)
    for name in APPEND_LINES:
        keys = [key for key in crash.statuses if line_name(key) == name]
        status = crash.statuses[keys[0]] if keys else "not started"
        if status in ("running", "retrying"):
            assert counts[name] in (1, 2), f"{name} was in flight: it runs again at most once"
        else:
            assert counts[name] == 1, f"{name} was {status} at the kill, so it must have run exactly once"


def check_journal(crash: Crash) -> None:
    store = open_store(crash.db)
    try:
        events = store.events(crash.run_id)
        rows = store.step_runs(crash.run_id)
        run = store.get_run(crash.run_id)
    finally:
        store.close()
    seqs = [row["seq"] for row in events]
    # Progress events take seqs too but are not journaled, so the journal's seqs only increase.
    assert seqs == sorted(set(seqs))
    assert [(row["seq"], row["type"]) for row in events][: len(crash.journal_before)] == crash.journal_before
    printed = [(event["seq"], event["type"]) for event in crash.seen if event["type"] != "step_progress"]
    assert set(printed) <= set(crash.journal_before), "every event printed before the kill was journaled first"

    types = [row["type"] for row in events]
    assert types.count("run_resumed") == 1
    assert types[-1] == "run_completed"
    resumed_at = types.index("run_resumed")
    assert resumed_at == len(crash.journal_before)
    in_flight = in_flight_keys(crash)
    assert sorted(events[resumed_at]["data"]["interrupted_steps"]) == sorted(in_flight)
    leaf_in_flight = {key for key in in_flight if key != "fan"}
    retried = {
        row["step_key"]
        for row in events[resumed_at:]
        if row["type"] == "step_retrying" and row["data"]["error"]["kind"] == "interrupted"
    }
    assert retried == leaf_in_flight

    assert {key: row.status for key, row in rows.items() if row.status != "completed"} == {}
    for key in leaf_in_flight:
        assert rows[key].attempt == 2, f"{key} was in flight and must have been retried once"
    for key, status in crash.statuses.items():
        if status == "completed":
            assert rows[key].attempt == 1, f"{key} completed before the kill and must keep its attempt"
    assert run.status == "completed"
    assert run.owner is None


def check_resumed_run(crash: Crash) -> None:
    assert in_flight_keys(crash), f"the kill point should catch a step in flight: {crash.statuses}"
    check_summary_completed(crash)
    check_executions(crash)
    check_journal(crash)


def test_kill_after_second_step(crashes: dict[str, Crash]) -> None:
    crash = crashes["after_two_steps"]

    assert crash.statuses["s1"] == "completed"
    assert crash.statuses["s2"] == "completed"
    check_resumed_run(crash)


def test_kill_during_wait_step(crashes: dict[str, Crash]) -> None:
    crash = crashes["during_wait"]

    assert crash.statuses["hold"] == "running"
    check_resumed_run(crash)


def test_kill_during_fan_out(crashes: dict[str, Crash]) -> None:
    crash = crashes["during_fan_out"]

    assert crash.statuses["fan"] == "running"
    naps_done = [key for key, status in crash.statuses.items() if key.endswith(".nap") and status == "completed"]
    assert len(naps_done) >= 2
    check_resumed_run(crash)


def test_interrupted_without_retries_fails(crashes: dict[str, Crash]) -> None:
    crash = crashes["no_retries_left"]

    assert crash.resume_exit == 1, crash.resume_stderr
    summary = crash.resume_lines[-1]
    assert summary["status"] == "failed"
    assert summary["error"]["step_key"] == "hold"
    assert summary["error"]["kind"] == "interrupted"
    assert "retry.max_attempts" in summary["error"]["message"]
    assert count_lines(crash.root / LOG) == {"s1": 1, "s2": 1}
    store = open_store(crash.db)
    try:
        rows = store.step_runs(crash.run_id)
    finally:
        store.close()
    assert rows["s1"].status == "completed"
    assert rows["s2"].status == "completed"
    assert rows["hold"].status == "failed"
    assert "fan" not in rows or rows["fan"].status == "skipped"
