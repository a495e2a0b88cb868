"""The ``studio`` command line as a user runs it: ``python -m studio`` subprocesses on a temporary database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from studio.store import open_store
from tests.conftest import lua_step, run_cli, workflow_document

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "resources" / "examples"


def write(path: Path, document: dict[str, Any] | str) -> Path:
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=2), encoding="utf-8")
    return path


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Parse ``--json`` output: every non-empty line must be one JSON object."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def greeting_document() -> dict[str, Any]:
    return workflow_document(
        [
            lua_step(
                "greet", "return {text = label .. ' x' .. n, n = n}", {"label": "{{input.label}}", "n": "{{input.n}}"}
            )
        ],
        inputs={"label": {"type": "string"}, "n": {"type": "integer", "minimum": 1, "default": 1}},
        name="Greeting",
    )


def review_document() -> dict[str, Any]:
    task = {
        "id": "review",
        "type": "human_task",
        "config": {"title": "Approve the number", "fields": [{"name": "note", "type": "text", "required": True}]},
    }
    return workflow_document(
        [
            lua_step("number", "return 7"),
            task,
            lua_step("after", "return note", {"note": "{{steps.review.result.values.note}}"}),
        ],
        [("number", "review")],
        name="Review",
    )


# -- validate -----------------------------------------------------------------------------------------


def test_validate_example_ok(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "db", "validate", str(EXAMPLES / "text-report.workflow.json"))

    assert result.returncode == 0, result.stderr
    assert "0 error(s) in 'Paragraph report'" in result.stdout


def test_validate_malformed_json(tmp_path: Path) -> None:
    bad = write(tmp_path / "broken.workflow.json", '{\n  "schema_version": 1,\n  "steps": [\n}\n')

    result = run_cli(tmp_path / "db", "validate", str(bad))

    assert result.returncode == 2
    assert result.stdout == ""
    assert str(bad) in result.stderr
    assert "invalid JSON at line 4, column 1" in result.stderr


def test_validate_unknown_step_type(tmp_path: Path) -> None:
    document = workflow_document([{"id": "x", "type": "shell_command", "config": {}}])
    bad = write(tmp_path / "unknown.workflow.json", document)

    result = run_cli(tmp_path / "db", "validate", str(bad))

    assert result.returncode == 2
    assert str(bad) in result.stderr
    assert "steps[0]" in result.stderr
    assert "shell_command" in result.stderr


def test_validate_cycle(tmp_path: Path) -> None:
    document = workflow_document(
        [lua_step("a", "return 1"), lua_step("b", "return 2")], [("a", "b"), ("b", "a")], name="Loop"
    )
    bad = write(tmp_path / "cycle.workflow.json", document)

    result = run_cli(tmp_path / "db", "validate", str(bad))

    assert result.returncode == 1
    assert f"{bad}: error:" in result.stdout
    assert "cycle" in result.stdout.lower()


def test_run_refuses_invalid_file(tmp_path: Path) -> None:
    document = workflow_document([lua_step("a", "return 1"), lua_step("b", "return 2")], [("a", "b"), ("b", "a")])
    bad = write(tmp_path / "cycle.workflow.json", document)

    result = run_cli(tmp_path / "db", "run", str(bad))

    assert result.returncode == 2
    assert "has validation errors" in result.stderr


# -- run ----------------------------------------------------------------------------------------------


def test_run_with_inputs_json_lines(tmp_path: Path) -> None:
    workflow_file = write(tmp_path / "greeting.workflow.json", greeting_document())

    result = run_cli(tmp_path / "db", "run", str(workflow_file), "--input", "label=hello world", "-i", "n=3", "--json")

    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert [line["type"] for line in lines] == [
        "run_created",
        "run_started",
        "step_started",
        "step_completed",
        "run_completed",
        "summary",
    ]
    assert lines[0]["data"]["inputs"] == {"label": "hello world", "n": 3}
    assert lines[-1]["status"] == "completed"
    assert lines[-1]["result"] == {"greet": {"text": "hello world x3", "n": 3}}
    assert [line["seq"] for line in lines[:-1]] == [1, 2, 3, 4, 5]


def test_run_readable_output(tmp_path: Path) -> None:
    workflow_file = write(tmp_path / "greeting.workflow.json", greeting_document())

    result = run_cli(tmp_path / "db", "run", str(workflow_file), "--input", "label=hi")

    assert result.returncode == 0, result.stderr
    assert "step_completed" in result.stdout
    assert '"text": "hi x1"' in result.stdout
    assert "completed." in result.stdout


def test_run_bad_input_value(tmp_path: Path) -> None:
    workflow_file = write(tmp_path / "greeting.workflow.json", greeting_document())

    result = run_cli(tmp_path / "db", "run", str(workflow_file), "--input", "label=x", "--input", "n=many")

    assert result.returncode == 2
    assert result.stdout == ""
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1, result.stderr
    assert error_lines[0].startswith("error: ")
    assert "n: 'many' is not of type 'integer'" in error_lines[0]
    assert "--input" in error_lines[0]


@pytest.mark.parametrize("argument", ["label"])
def test_run_malformed_input_option(tmp_path: Path, argument: str) -> None:
    workflow_file = write(tmp_path / "greeting.workflow.json", greeting_document())

    result = run_cli(tmp_path / "db", "run", str(workflow_file), "--input", argument)

    assert result.returncode == 2
    assert f"--input '{argument}' is invalid; write --input name=value" in result.stderr


def test_run_failure_exit_code(tmp_path: Path) -> None:
    document = workflow_document(
        [lua_step("ok", "return 1"), lua_step("bad", "error('no luck')", {"x": "{{steps.ok.result}}"})]
    )
    workflow_file = write(tmp_path / "fail.workflow.json", document)

    result = run_cli(tmp_path / "db", "run", str(workflow_file))

    assert result.returncode == 1
    assert "error in step bad" in result.stderr
    assert "no luck" in result.stderr


# -- runs, tasks, task, resume ---------------------------------------------------------------------------


def test_runs_and_task_reject(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    workflow_file = write(tmp_path / "review.workflow.json", review_document())

    started = run_cli(db, "run", str(workflow_file), "--json")
    assert started.returncode == 4, started.stderr
    run_id = json_lines(started.stdout)[-1]["run_id"]

    runs = run_cli(db, "runs", "--json")
    assert runs.returncode == 0, runs.stderr
    assert [(row["id"], row["status"], row["workflow"]) for row in json.loads(runs.stdout)] == [
        (run_id, "waiting", "Review")
    ]
    table = run_cli(db, "runs", "--status", "waiting")
    assert run_id[:8] in table.stdout

    tasks = run_cli(db, "tasks", "--json")
    assert tasks.returncode == 0, tasks.stderr
    pending = json.loads(tasks.stdout)
    assert [(task["run_id"], task["title"]) for task in pending] == [(run_id, "Approve the number")]
    task_id = pending[0]["id"]
    listing = run_cli(db, "tasks")
    assert "--field note=<text> (required)" in listing.stdout

    missing = run_cli(db, "task", "approve", task_id[:8])
    assert missing.returncode == 2
    assert "field 'note' is required to approve; pass it with --field note=..." in missing.stderr

    rejected = run_cli(db, "task", "reject", task_id[:8], "--comment", "not this week", "--json")
    assert rejected.returncode == 1, rejected.stderr
    summary = json_lines(rejected.stdout)[-1]
    assert summary["status"] == "failed"
    assert "rejected by cli user: not this week" in summary["error"]["message"]

    again = run_cli(db, "task", "approve", task_id, "--field", "note=late")
    assert again.returncode == 2
    assert "already resolved" in again.stderr
    assert "No pending human tasks." in run_cli(db, "tasks").stdout


@pytest.mark.parametrize("decision", ["accept", "decline", "cancel"])
def test_task_input_decision_on_approval_rejected(tmp_path: Path, decision: str) -> None:
    db = tmp_path / "studio.db"
    workflow_file = write(tmp_path / "review.workflow.json", review_document())
    assert run_cli(db, "run", str(workflow_file)).returncode == 4
    task_id = json.loads(run_cli(db, "tasks", "--json").stdout)[0]["id"]

    answered = run_cli(db, "task", decision, task_id, "--field", "note=x")

    assert answered.returncode == 2
    assert "Traceback" not in answered.stderr
    assert "approve" in answered.stderr
    assert len(json.loads(run_cli(db, "tasks", "--json").stdout)) == 1


def test_task_approve_with_fields(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    workflow_file = write(tmp_path / "review.workflow.json", review_document())
    assert run_cli(db, "run", str(workflow_file)).returncode == 4
    task_id = json.loads(run_cli(db, "tasks", "--json").stdout)[0]["id"]

    approved = run_cli(db, "task", "approve", task_id, "--field", "note=ship it", "--json")

    assert approved.returncode == 0, approved.stderr
    summary = json_lines(approved.stdout)[-1]
    assert summary["status"] == "completed"
    assert summary["result"] == {"after": "ship it"}
    store = open_store(db)
    try:
        task = store.get_task(task_id)
        assert (task.status, task.values, task.resolved_by) == ("approved", {"note": "ship it"}, "cli user")
    finally:
        store.close()


def test_resume_without_interrupted_runs(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "db", "resume")

    assert result.returncode == 0, result.stderr
    assert "No interrupted runs to resume." in result.stdout


def test_resume_unknown_run(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "db", "resume", "deadbeef")

    assert result.returncode == 2
    assert "run 'deadbeef' was not found" in result.stderr


def test_runs_empty_database(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "db", "runs")

    assert result.returncode == 0
    assert "No runs yet." in result.stdout
