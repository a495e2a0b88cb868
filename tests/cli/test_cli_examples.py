"""The shipped examples run end to end through ``python -m studio``, side by side to keep the module fast."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from studio.store import open_store
from tests.conftest import REPO_ROOT, cli_env, run_cli
from tests.fakes.openai_server import FakeOpenAIServer, json_reply, openai_server

pytestmark = pytest.mark.slow

EXAMPLES = REPO_ROOT / "resources" / "examples"
FAKE_KEY = "sk-test-fake-key-0123456789abcdef"
TIME_SERVER = REPO_ROOT / ".deps" / "mcp-server-time" / "bin" / "mcp-server-time"


@dataclass
class ExampleRun:
    db: Path
    steps: list[subprocess.CompletedProcess[str]]

    def last_summary(self) -> dict[str, Any]:
        return json.loads(self.steps[-1].stdout.splitlines()[-1])  # type: ignore[no-any-return]


def text_report(base: Path) -> ExampleRun:
    """Run the paragraph report, then approve its review task through the CLI."""
    db = base / "studio.db"
    started = run_cli(db, "run", str(EXAMPLES / "text-report.workflow.json"), "--json")
    if started.returncode != 4:
        return ExampleRun(db, [started])
    tasks = run_cli(db, "tasks", "--json")
    task_id = json.loads(tasks.stdout)[0]["id"]
    approved = run_cli(db, "task", "approve", task_id[:8], "--field", "heading=Weekly report", "--json")
    return ExampleRun(db, [started, tasks, approved])


def world_clock(base: Path) -> ExampleRun:
    db = base / "studio.db"
    return ExampleRun(db, [run_cli(db, "run", str(EXAMPLES / "world-clock.workflow.json"), "--json")])


def llm_summary(base: Path, server: FakeOpenAIServer) -> ExampleRun:
    db = base / "studio.db"
    env = cli_env(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY=FAKE_KEY)
    text = "Workflow Studio runs workflows. It keeps a journal. Runs survive crashes."
    completed = run_cli(
        db, "run", str(EXAMPLES / "llm-summary.workflow.json"), "--input", f"text={text}", "--json", env=env
    )
    return ExampleRun(db, [completed])


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeOpenAIServer]:
    with openai_server(api_key=FAKE_KEY) as server:
        server.script(
            json_reply({"summary": "A durable workflow runner.", "keywords": ["workflow", "journal", "crash"]})
        )
        yield server


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory, llm_server: FakeOpenAIServer) -> dict[str, ExampleRun]:
    if not TIME_SERVER.exists():
        pytest.fail(f"{TIME_SERVER} is missing; run tools/bootstrap-test-deps.sh to install the MCP test servers")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            "text-report": pool.submit(text_report, tmp_path_factory.mktemp("text-report")),
            "world-clock": pool.submit(world_clock, tmp_path_factory.mktemp("world-clock")),
            "llm-summary": pool.submit(llm_summary, tmp_path_factory.mktemp("llm-summary"), llm_server),
        }
        return {name: future.result() for name, future in futures.items()}


def test_text_report_approved_via_cli(examples: dict[str, ExampleRun]) -> None:
    run = examples["text-report"]

    assert [step.returncode for step in run.steps] == [4, 0, 0], run.steps[-1].stderr
    summary = run.last_summary()
    assert summary["status"] == "completed"
    table = summary["result"]["table"]
    markdown = json.dumps(table)
    assert "workflow-studio-runs-ai-agent-wo" in markdown
    approved_lines = [json.loads(line) for line in run.steps[-1].stdout.splitlines()]
    resolved = [line for line in approved_lines if line.get("type") == "task_resolved"]
    assert [(line["data"]["decision"], line["data"]["values"]["heading"]) for line in resolved] == [
        ("approve", "Weekly report")
    ]


def test_world_clock_third_party_server(examples: dict[str, ExampleRun]) -> None:
    run = examples["world-clock"]

    assert run.steps[0].returncode == 0, run.steps[0].stderr
    lines = run.last_summary()["result"]["table"]
    assert [line.split(" ")[0] for line in lines] == ["Europe/Berlin", "Asia/Tokyo", "America/New_York"]
    assert all(len(line.split(" ")) == 2 for line in lines)


def test_llm_summary_against_fake_server(examples: dict[str, ExampleRun], llm_server: FakeOpenAIServer) -> None:
    run = examples["llm-summary"]
    completed = run.steps[0]

    assert completed.returncode == 0, completed.stderr
    assert run.last_summary()["result"] == {"format": "A durable workflow runner. [workflow, journal, crash]"}
    request = llm_server.chat_requests[-1]
    assert request.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert "Summarise this 11-word text" in json.dumps(request.json)


def test_llm_summary_model_from_input(examples: dict[str, ExampleRun], llm_server: FakeOpenAIServer) -> None:
    assert examples["llm-summary"].steps[0].returncode == 0
    assert llm_server.chat_requests[-1].json["model"] == "gpt-4o-mini"


def test_llm_key_never_stored_or_printed(examples: dict[str, ExampleRun]) -> None:
    run = examples["llm-summary"]
    completed = run.steps[0]

    assert FAKE_KEY not in completed.stdout
    assert FAKE_KEY not in completed.stderr
    for path in run.db.parent.glob("studio.db*"):
        assert FAKE_KEY.encode() not in path.read_bytes(), path.name
    store = open_store(run.db)
    try:
        run_id = run.last_summary()["run_id"]
        assert FAKE_KEY not in json.dumps(store.events(run_id))
        assert FAKE_KEY not in json.dumps(store.usage(run_id))
    finally:
        store.close()
