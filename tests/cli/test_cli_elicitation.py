"""An MCP server's input request during 'studio run', answered with 'studio task' from another process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO_ROOT, cli_env, run_cli, workflow_document

SCRIPTED_SERVER = REPO_ROOT / "tests" / "engine" / "mcp_scripts" / "scripted_server.py"
WAIT_S = 60.0


def pending_tasks(db: Path) -> list[dict[str, object]]:
    listed = run_cli(db, "tasks", "--json")
    assert listed.returncode == 0, listed.stderr
    return list(json.loads(listed.stdout))


def test_run_waits_for_input_request_answer(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    step = {
        "id": "greet",
        "type": "mcp_call",
        "config": {"server_url": f"stdio:{sys.executable} {SCRIPTED_SERVER}", "tool": "greet", "arguments": {}},
    }
    path = tmp_path / "greet.workflow.json"
    path.write_text(json.dumps(workflow_document([step])), encoding="utf-8")
    running = subprocess.Popen(
        [sys.executable, "-m", "studio", "--db", str(db), "run", str(path), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        tasks: list[dict[str, object]] = []
        while not tasks and time.monotonic() < deadline and running.poll() is None:
            time.sleep(0.2)
            tasks = pending_tasks(db)
        assert running.poll() is None, "studio run exited instead of keeping the MCP call open"
        assert len(tasks) == 1

        answered = run_cli(db, "task", "accept", str(tasks[0]["id"]), "--field", "name=Ann", "--field", "age=41")
        output, errors = running.communicate(timeout=WAIT_S)
    finally:
        if running.poll() is None:
            running.kill()

    assert answered.returncode == 0, answered.stderr
    assert running.returncode == 0, errors
    summary = json.loads(output.splitlines()[-1])
    assert summary["status"] == "completed"
    assert "hello Ann, 41" in json.dumps(summary["result"])
