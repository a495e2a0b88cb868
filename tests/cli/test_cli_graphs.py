"""The export, import, publish, versions and diff commands, run as subprocesses on a temporary database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from studio import cli, cli_graphs
from studio.model.document import workflow_from_data
from studio.store import open_store
from studio.store import workflow_library as library
from tests.conftest import REPO_ROOT, cli_env

pytestmark = pytest.mark.slow

GITHUB_URL = "https://mcp.example.test/github"


def run_graphs(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m studio --db DB ARGS`` to the end."""
    return subprocess.run(
        [sys.executable, "-m", "studio", "--db", str(db), *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def workflow_data(source: str = "return 1", **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "id": "4f1d0c5e-7a51-4c7e-9b0e-3a2b1c0d9e8f",
        "name": "CLI graphs",
        "steps": [{"id": "first", "type": "lua_script", "config": {"source": source}}],
        **extra,
    }


def test_publish_then_versions(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    path = write(tmp_path / "wf.json", workflow_data())

    first = run_graphs(db, "publish", str(path), "--note", "first cut")
    again = run_graphs(db, "publish", str(path), "--note", "same content")
    write(path, workflow_data("return 2"))
    second = run_graphs(db, "publish", str(path), "--note", "second cut")
    listing = run_graphs(db, "versions", "CLI graphs", "--json")

    assert first.returncode == 0, first.stderr
    assert "as version 1" in first.stdout
    assert "already published as version 1" in again.stdout
    assert "as version 2" in second.stdout
    versions = json.loads(listing.stdout)["versions"]
    assert [(row["number"], row["note"]) for row in versions] == [(1, "first cut"), (2, "second cut")]


def test_publish_blocked_lists_problems(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    path = write(tmp_path / "wf.json", workflow_data(source=""))

    result = run_graphs(db, "publish", str(path), "--note", "broken")

    assert result.returncode == 1
    assert "cannot publish workflow 'CLI graphs'" in result.stderr
    assert "step 'first'" in result.stderr


def test_publish_needs_a_note(tmp_path: Path) -> None:
    path = write(tmp_path / "wf.json", workflow_data())

    result = run_graphs(tmp_path / "studio.db", "publish", str(path), "--note", "  ")

    assert result.returncode == 2
    assert "--note is empty" in result.stderr


def test_diff_of_versions_and_files(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    path = write(tmp_path / "wf.json", workflow_data())
    run_graphs(db, "publish", str(path), "--note", "v1")
    changed = workflow_data("return 2")
    changed["steps"].append({"id": "second", "type": "lua_script", "config": {"source": "return 3"}})
    write(path, changed)
    run_graphs(db, "publish", str(path), "--note", "v2")

    text = run_graphs(db, "diff", "CLI graphs@1", "CLI graphs@2")
    as_json = run_graphs(db, "diff", "CLI graphs@1", str(path), "--json")

    assert text.returncode == 0, text.stderr
    assert "1 added, 1 changed" in text.stdout
    assert 'config.source: "return 1" -> "return 2"' in text.stdout
    data = json.loads(as_json.stdout)
    assert [(step["step_id"], step["status"]) for step in data["steps"]] == [("first", "changed"), ("second", "added")]


def test_diff_unknown_version(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    path = write(tmp_path / "wf.json", workflow_data())
    run_graphs(db, "publish", str(path), "--note", "v1")

    result = run_graphs(db, "diff", "CLI graphs@1", "CLI graphs@5")

    assert result.returncode == 2
    assert "has no version 5; published versions: 1" in result.stderr


def prepare_store(db: Path) -> tuple[str, str, str]:
    """Create an MCP instance, a connection (no secret) and a workflow using both; return their ids."""
    store = open_store(db)
    try:
        instance_id = store.add_mcp_instance(name="GitHub", transport="http", url=GITHUB_URL)
        connection_id = store.add_connection(name="Local Ollama", kind="none", provider="ollama")
        steps = [
            {"id": "issues", "type": "mcp_call", "config": {"instance_id": instance_id, "tool": "list"}},
            {"id": "ask", "type": "llm_call", "config": {"connection_id": connection_id, "model": "m", "prompt": "p"}},
        ]
        workflow = workflow_from_data({"schema_version": 1, "name": "Shared flow", "steps": steps}, "test")
        library.save_draft(store, workflow)
        return instance_id, connection_id, workflow.id
    finally:
        store.close()


def test_export_then_import_with_auto_match(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    instance_id, connection_id, workflow_id = prepare_store(db)
    out = tmp_path / "shared.json"

    exported = run_graphs(db, "export", "Shared flow", "-o", str(out))
    imported = run_graphs(db, "import", str(out), "--json")

    assert exported.returncode == 0, exported.stderr
    assert "1 MCP servers, 1 credential slots" in exported.stdout
    text = out.read_text(encoding="utf-8")
    for local_id in (instance_id, connection_id, workflow_id):
        assert local_id not in text
    assert imported.returncode == 0, imported.stderr
    result = json.loads(imported.stdout)
    assert result["workflow_id"] != workflow_id
    assert result["servers"] == {GITHUB_URL: instance_id}
    assert result["slots"] == {"local-ollama": connection_id}


def test_import_asks_for_ambiguous_matches(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    instance_id, connection_id, _workflow_id = prepare_store(db)
    out = tmp_path / "shared.json"
    run_graphs(db, "export", "Shared flow", "-o", str(out))
    store = open_store(db)
    second_instance = store.add_mcp_instance(name="GitHub 2", transport="http", url=GITHUB_URL)
    store.close()

    refused = run_graphs(db, "import", str(out))
    mapped = run_graphs(db, "import", str(out), "--map", f"{GITHUB_URL}={second_instance}", "--json")
    unbound = run_graphs(db, "import", str(out), "--map", f"{GITHUB_URL}=none", "--json")

    assert refused.returncode == 2
    assert f"needs a choice for: server {GITHUB_URL}" in refused.stderr
    assert f"candidate MCP instance {instance_id}" in refused.stderr
    assert "--map NAME=LOCAL_ID" in refused.stderr
    assert json.loads(mapped.stdout)["servers"] == {GITHUB_URL: second_instance}
    assert json.loads(mapped.stdout)["slots"] == {"local-ollama": connection_id}
    assert json.loads(unbound.stdout)["servers"] == {GITHUB_URL: None}


def test_import_rejects_bad_map_and_file(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    prepare_store(db)
    out = tmp_path / "shared.json"
    run_graphs(db, "export", "Shared flow", "-o", str(out))
    broken = tmp_path / "broken.json"
    data = json.loads(out.read_text(encoding="utf-8"))
    data["workflow"]["steps"][0]["config"]["tool"] = 7
    write(broken, data)

    unknown = run_graphs(db, "import", str(out), "--map", "nothing=abc")
    malformed = run_graphs(db, "import", str(out), "--map", "no-equals-sign")
    invalid = run_graphs(db, "import", str(broken))
    missing_instance = run_graphs(db, "import", str(out), "--map", f"{GITHUB_URL}=not-an-instance")

    assert unknown.returncode == 2
    assert "'nothing' is not a server_url or credential slot" in unknown.stderr
    assert "--map 'no-equals-sign' is invalid" in malformed.stderr
    assert invalid.returncode == 2
    assert "workflow.steps[0].config.tool" in invalid.stderr
    assert "MCP instance 'not-an-instance' was not found" in missing_instance.stderr


def test_export_to_missing_folder(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    path = write(tmp_path / "wf.json", workflow_data())

    result = run_graphs(db, "export", str(path), "-o", str(tmp_path / "absent" / "out.json"))

    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_commands_fit_the_studio_parser() -> None:
    parser = cli.build_parser()

    args = parser.parse_args(["versions", "abc", "--json"])
    other = parser.parse_args(["tasks"])

    assert args.command == "versions"
    assert cli_graphs.handle(other) is None


@pytest.mark.parametrize("command", ["versions", "export"])
def test_unknown_workflow_is_named(tmp_path: Path, command: str) -> None:
    extra = ["-o", str(tmp_path / "o.json")] if command == "export" else []

    result = run_graphs(tmp_path / "studio.db", command, "Nope", *extra)

    assert result.returncode == 2
    assert "workflow 'Nope' was not found" in result.stderr


def test_export_version_to_stdout_and_list(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    path = write(tmp_path / "wf.json", workflow_data())
    run_graphs(db, "publish", str(path), "--note", "first cut")
    write(path, workflow_data("return 2"))
    run_graphs(db, "publish", str(path), "--note", "second cut")

    exported = run_graphs(db, "export", "CLI graphs", "--version", "1", "-o", "-")
    listing = run_graphs(db, "versions", "CLI graphs")

    assert exported.returncode == 0, exported.stderr
    graph = json.loads(exported.stdout)
    assert graph["workflow"]["steps"][0]["config"]["source"] == "return 1"
    assert "id" not in graph["workflow"]
    lines = listing.stdout.splitlines()
    assert lines[0].startswith("v2")
    assert lines[0].endswith("second cut")
    assert lines[1].startswith("v1")


def test_diff_prints_workflow_fields_and_notes(tmp_path: Path) -> None:
    old = write(tmp_path / "old.json", workflow_data())
    new = write(
        tmp_path / "new.json", workflow_data(notes=[{"id": "note-1", "text": "check the totals"}], description="Sums")
    )

    result = run_graphs(tmp_path / "studio.db", "diff", str(old), str(new))

    assert result.returncode == 0, result.stderr
    assert 'workflow description: "" -> "Sums"' in result.stdout
    assert "+ note note-1" in result.stdout


def test_diff_and_publish_of_shared_graph_file(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    path = write(tmp_path / "wf.json", workflow_data())
    shared = tmp_path / "shared.json"
    run_graphs(db, "publish", str(path), "--note", "v1")
    run_graphs(db, "export", "CLI graphs", "-o", str(shared))

    compared = run_graphs(db, "diff", str(path), str(shared))
    published = run_graphs(db, "publish", str(shared), "--note", "again")

    assert compared.returncode == 0, compared.stderr
    assert "no differences" in compared.stdout
    assert published.returncode == 2
    assert f"{shared} is a shared graph; import it with 'studio import {shared}'" in published.stderr


def test_export_file_is_readable_by_others(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    path = write(tmp_path / "wf.json", workflow_data())
    run_graphs(db, "publish", str(path), "--note", "v1")
    kept = tmp_path / "kept.json"
    kept.write_text("{}", encoding="utf-8")
    kept.chmod(0o640)

    fresh = run_graphs(db, "export", "CLI graphs", "-o", str(tmp_path / "fresh.json"))
    replaced = run_graphs(db, "export", "CLI graphs", "-o", str(kept))

    assert fresh.returncode == 0, fresh.stderr
    assert replaced.returncode == 0, replaced.stderr
    assert (tmp_path / "fresh.json").stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert kept.stat().st_mode & 0o777 == 0o640


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_unbound_stdio_server_is_warned(tmp_path: Path) -> None:
    graph = {
        "format": "workflow-studio/shared-graph",
        "schema_version": 1,
        "workflow": {
            "schema_version": 1,
            "name": "Runs a command",
            "steps": [
                {"id": "call", "type": "mcp_call", "config": {"server_url": "stdio:sh -c 'echo hi'", "tool": "t"}}
            ],
        },
        "servers": [{"server_url": "stdio:sh -c 'echo hi'", "steps": ["call"]}],
    }
    path = write(tmp_path / "graph.json", graph)

    result = run_graphs(tmp_path / "studio.db", "import", str(path), "--map", "stdio:sh -c 'echo hi'=none")

    assert result.returncode == 0, result.stderr
    assert "warning: step call will run the command sh -c 'echo hi' on this machine" in result.stderr


def test_run_stored_workflow_by_name_and_version(tmp_path: Path) -> None:
    db = tmp_path / "studio.db"
    assert (
        run_graphs(
            db, "publish", str(write(tmp_path / "v1.json", workflow_data("return 1"))), "--note", "one"
        ).returncode
        == 0
    )
    assert (
        run_graphs(
            db, "publish", str(write(tmp_path / "v2.json", workflow_data("return 2"))), "--note", "two"
        ).returncode
        == 0
    )

    latest = run_graphs(db, "run", "CLI graphs", "--json")
    first = run_graphs(db, "run", "CLI graphs@1", "--json")
    missing = run_graphs(db, "run", "No such workflow")

    assert latest.returncode == 0, latest.stderr
    assert json.loads(latest.stdout.splitlines()[-1])["result"] == {"first": 2}
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.splitlines()[-1])["result"] == {"first": 1}
    assert missing.returncode == 2
    assert "workflow 'No such workflow' was not found" in missing.stderr
