"""Bad input given to the ``studio`` command line: malformed files, values, databases and tool paths."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conftest import REPO_ROOT, cli_env, mcp_step, run_cli, workflow_document

pytestmark = pytest.mark.slow

EXIT_USAGE = 2
EXIT_FAILED = 1


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 5_000 + "1" + "}" * 5_000])
def test_deeply_nested_json_rejected(tmp_path: Path, command: str, text: str) -> None:
    path = tmp_path / "deep.workflow.json"
    path.write_text(text, encoding="utf-8")

    result = run_cli(tmp_path / "studio.db", command, str(path))

    assert result.returncode == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr
    assert "nested too deeply" in result.stderr
    assert str(path) in result.stderr


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [("file_append_line", {"path": "pipe", "line": "x"}), ("file_write", {"path": "pipe", "content": "x"})],
)
def test_file_tool_rejects_fifo(tmp_path: Path, tool: str, arguments: dict[str, str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "pipe")
    # Without the check the tool blocks on the FIFO until the step times out.
    step = mcp_step("write", tool, arguments, timeout_s=30)
    path = tmp_path / "fifo.workflow.json"
    path.write_text(json.dumps(workflow_document([step])), encoding="utf-8")

    result = run_cli(tmp_path / "studio.db", "run", str(path), env=cli_env(STUDIO_TOOLS_ROOT=str(root)))

    assert result.returncode == EXIT_FAILED, result.stderr
    assert "'pipe' is not a regular file" in result.stdout
    assert "timed out" not in result.stdout


@pytest.mark.parametrize(
    ("server_url", "expected"),
    [
        ("ftp://127.0.0.1/mcp", "starting with 'ftp' is not supported"),
        ("stdio:", "names no command"),
        ('stdio:"unterminated --token=abc123', "is not a valid command line (No closing quotation)"),
    ],
)
def test_invalid_server_url_found_before_run(tmp_path: Path, server_url: str, expected: str) -> None:
    path = tmp_path / "server.workflow.json"
    path.write_text(json.dumps(workflow_document([mcp_step("call", "text_stats", server=server_url)])), "utf-8")
    db = tmp_path / "studio.db"

    validated = run_cli(db, "validate", str(path))
    ran = run_cli(db, "run", str(path))
    listed = run_cli(db, "runs", "--json")

    assert validated.returncode == 1, validated.stdout
    assert expected in validated.stdout
    assert "[invalid-server-url]" in validated.stdout
    assert "abc123" not in validated.stdout
    assert ran.returncode == EXIT_USAGE, ran.stderr
    assert expected in ran.stderr
    assert listed.stdout.strip() in ("", "[]")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", "[" * 50_000 + "]" * 50_000])
def test_input_not_json_number_stays_text(tmp_path: Path, value: str) -> None:
    step = {"id": "echo", "type": "lua_script", "config": {"source": "return n", "inputs": {"n": "{{input.n}}"}}}
    document = workflow_document([step], inputs={"n": {"type": "number"}})
    document["input_schema"]["required"] = ["n"]
    path = tmp_path / "number.workflow.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    db = tmp_path / "studio.db"

    result = run_cli(db, "run", str(path), "--input", f"n={value}")
    listed = run_cli(db, "runs", "--json")

    assert result.returncode == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr
    assert f"n: '{value[:20]}" in result.stderr
    assert "is not of type 'number'" in result.stderr
    assert listed.stdout.strip() in ("", "[]")


@pytest.mark.parametrize("value", ["01234", "42", "true", "null", "[1]"])
def test_string_input_keeps_its_text(tmp_path: Path, value: str) -> None:
    step = {"id": "echo", "type": "lua_script", "config": {"source": "return zip", "inputs": {"zip": "{{input.zip}}"}}}
    document = workflow_document([step], inputs={"zip": {"type": "string"}})
    path = tmp_path / "text.workflow.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    result = run_cli(tmp_path / "studio.db", "run", str(path), "--input", f"zip={value}", "--json")

    assert result.returncode == 0, result.stderr
    completed = [json.loads(line) for line in result.stdout.splitlines() if '"step_completed"' in line]
    assert completed[-1]["data"]["result"] == value


def test_unknown_run_status_rejected(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "studio.db", "runs", "--status", "bogus")

    assert result.returncode == EXIT_USAGE
    assert "invalid choice: 'bogus'" in result.stderr
    assert "completed" in result.stderr


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("directory", "unable to open database file"),
        ("garbage", "file is not a database"),
        ("under-file", "Not a directory"),
    ],
)
@pytest.mark.parametrize("command", [["runs"], ["tasks"], ["resume"]])
def test_unusable_database_path_rejected(tmp_path: Path, kind: str, reason: str, command: list[str]) -> None:
    db = tmp_path / "studio.db"
    if kind == "directory":
        db.mkdir()
    elif kind == "garbage":
        db.write_bytes(bytes(range(256)) * 16)
    else:
        blocker = tmp_path / "blocker"
        blocker.write_text("a file, not a directory", encoding="utf-8")
        db = blocker / "missing" / "studio.db"

    result = run_cli(db, *command)

    assert result.returncode == EXIT_USAGE, result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot open the database '{db}'" in result.stderr
    assert reason in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ({"name": "copies", "type": "number", "default": "abc"}, "which is not a number"),
        ({"name": "urgent", "type": "boolean", "default": "maybe"}, "which is not a boolean"),
        ({"name": "tone", "type": "choice", "choices": ["formal"], "default": "rude"}, "not one of its choices"),
    ],
)
def test_form_default_of_wrong_type_rejected(tmp_path: Path, field: dict[str, object], expected: str) -> None:
    # Approving without a value used to return such a default unchanged, for example "abc" for a number.
    step = {"id": "review", "type": "human_task", "config": {"title": "Check", "fields": [field]}}
    path = tmp_path / "form.workflow.json"
    path.write_text(json.dumps(workflow_document([step])), encoding="utf-8")

    result = run_cli(tmp_path / "studio.db", "run", str(path))

    assert result.returncode == EXIT_USAGE, result.stderr
    assert "steps[0].config.fields[0]" in result.stderr
    assert expected in result.stderr


def test_form_default_template_accepted(tmp_path: Path) -> None:
    field = {"name": "copies", "type": "number", "default": "{{input.copies}}"}
    step = {"id": "review", "type": "human_task", "config": {"title": "Check", "fields": [field]}}
    path = tmp_path / "form.workflow.json"
    path.write_text(json.dumps(workflow_document([step], inputs={"copies": {"type": "integer"}})), encoding="utf-8")

    result = run_cli(tmp_path / "studio.db", "validate", str(path))

    assert result.returncode == 0, result.stdout + result.stderr


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        body = b'{"type": "integer"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def schema_server() -> Iterator[tuple[str, list[str]]]:
    """Yield the base URL of a loopback HTTP server that serves a schema, and the paths it was asked for."""
    requested: list[str] = []
    handler = type("Handler", (_RecordingHandler,), {"paths": requested})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_remote_schema_ref_rejected_unfetched(tmp_path: Path, schema_server: tuple[str, list[str]]) -> None:
    base_url, requested = schema_server
    step = {"id": "echo", "type": "lua_script", "config": {"source": "return x", "inputs": {"x": "{{input.x}}"}}}
    path = tmp_path / "ref.workflow.json"
    path.write_text(
        json.dumps(workflow_document([step], inputs={"x": {"$ref": f"{base_url}/count.json"}})), encoding="utf-8"
    )
    db = tmp_path / "studio.db"

    validated = run_cli(db, "validate", str(path))
    ran = run_cli(db, "run", str(path), "--input", "x=1")

    assert validated.returncode == 1, validated.stdout
    assert "input_schema.properties.x.$ref" in validated.stdout
    assert "points outside the schema" in validated.stdout
    assert ran.returncode == EXIT_USAGE, ran.stderr
    assert "Traceback" not in ran.stderr
    assert requested == []


def test_workflow_file_with_bom_accepted(tmp_path: Path) -> None:
    document = workflow_document([{"id": "one", "type": "lua_script", "config": {"source": "return 1"}}])
    path = tmp_path / "bom.workflow.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(document).encode("utf-8"))

    result = run_cli(tmp_path / "studio.db", "validate", str(path))

    assert result.returncode == 0, result.stderr
    assert "0 error(s)" in result.stdout


def test_workflow_file_not_utf8_rejected(tmp_path: Path) -> None:
    path = tmp_path / "utf16.workflow.json"
    path.write_text(json.dumps(workflow_document([])), encoding="utf-16")

    result = run_cli(tmp_path / "studio.db", "validate", str(path))

    assert result.returncode == EXIT_USAGE, result.stderr
    assert "is not UTF-8 text (invalid byte at offset 0); save it as UTF-8 JSON" in result.stderr


def test_json_query_deep_text_rejected(tmp_path: Path) -> None:
    step = mcp_step("query", "json_query", {"path": "a", "json_text": "[" * 100_000})
    path = tmp_path / "query.workflow.json"
    path.write_text(json.dumps(workflow_document([step])), encoding="utf-8")

    result = run_cli(tmp_path / "studio.db", "run", str(path))

    assert result.returncode == EXIT_FAILED, result.stderr
    assert "'json_text' is nested too deeply to parse; flatten the document" in result.stdout


def _run_until_killed(db: Path, path: Path, markers: list[str]) -> None:
    """Run ``studio run PATH`` and kill -9 it once its output has contained every marker."""
    process = subprocess.Popen(
        [sys.executable, "-m", "studio", "--db", str(db), "run", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=cli_env(),
        cwd=REPO_ROOT,
    )
    assert process.stdout is not None
    remaining = set(markers)
    for line in process.stdout:
        remaining = {marker for marker in remaining if marker not in line}
        if not remaining:
            break
    process.kill()
    process.wait(timeout=30)
    process.stdout.close()


def test_resume_failure_not_hidden_by_waiting(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    retry = {"max_attempts": 2, "backoff_base_s": 0.1, "retry_on": ["any"]}
    slow = mcp_step("slow", "wait", {"seconds": 60}, retry=retry)
    slow_path = tmp_path / "slow.workflow.json"
    slow_path.write_text(json.dumps(workflow_document([slow])), encoding="utf-8")
    first = {"id": "first", "type": "human_task", "config": {"title": "One", "timeout_s": 0.2, "on_timeout": "default"}}
    second = {"id": "second", "type": "human_task", "config": {"title": "Two"}}
    waiting_path = tmp_path / "waiting.workflow.json"
    waiting_path.write_text(json.dumps(workflow_document([first, second], [("first", "second")])), encoding="utf-8")

    _run_until_killed(db, slow_path, ["step_progress"])
    # This process resumes the slow run (attempt 2 of 2) and is killed during it, so resuming again
    # fails that run. The first task is past its timeout by then, so the other run moves on and
    # waits for the second task.
    _run_until_killed(db, waiting_path, ["(attempt 2)", "step_waiting"])
    result = run_cli(db, "resume")

    assert "waiting" in result.stdout
    assert "failed" in result.stdout
    assert result.returncode == EXIT_FAILED, result.stdout
