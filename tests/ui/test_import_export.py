"""Shared-graph Export and Import in a real window: files, the mapping dialog, errors and the new draft."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import shiboken6

from studio.app.main_window import MainWindow
from studio.model.document import workflow_from_data
from studio.model.workflow import LlmCallStep, McpCallStep, Workflow
from studio.panels.import_export import ImportExport, install_import_export
from studio.panels.import_export.mapping_dialog import CHOOSE, UNBOUND_SERVER_TEXT
from studio.panels.workflows import install_workflow_library
from studio.secrets import SecretVault, create_connection
from studio.store import workflow_library as library
from tests.secrets.keyring_backends import MemoryKeyring

SECRET = "sk-ui-export-Ww81kPq3Za"
GITHUB_URL = "https://mcp.example.test/github"


@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> Iterator[MainWindow]:
    main_window = MainWindow(store_path=tmp_path / "studio.db", recovery_dir=tmp_path / "recovery")
    qtbot.addWidget(main_window)
    main_window.show()
    yield main_window
    # Closing a window with unsaved changes opens a modal Save/Discard/Cancel box that blocks the test.
    if shiboken6.isValid(main_window.document):
        main_window.document.mark_clean()


@pytest.fixture
def installed(window: MainWindow) -> ImportExport:
    return install_import_export(window)


def shared_workflow(instance_id: str, connection_id: str) -> Workflow:
    steps = [
        {"id": "issues", "type": "mcp_call", "config": {"instance_id": instance_id, "tool": "list_issues"}},
        {"id": "ask", "type": "llm_call", "config": {"connection_id": connection_id, "model": "m", "prompt": "p"}},
    ]
    return workflow_from_data({"schema_version": 1, "name": "Shared in UI", "steps": steps}, "test")


def open_shared(window: MainWindow) -> tuple[Workflow, str, str]:
    """Create an instance and a connection (secret in a memory keychain) and open a workflow using both."""
    vault = SecretVault("local", MemoryKeyring())
    connection = create_connection(window.store, vault, "OpenAI Work", "api_key", provider="openai", secret=SECRET)
    instance_id = window.store.add_mcp_instance(name="GitHub", transport="http", url=GITHUB_URL)
    workflow = shared_workflow(instance_id, connection.id)
    window.show_document(workflow, None)
    return workflow, instance_id, connection.id


def test_actions_in_file_menu(window: MainWindow, installed: ImportExport) -> None:
    texts = [action.text() for action in window.file_menu.actions()]

    assert "&Import shared graph…" in texts
    assert "E&xport shared graph…" in texts
    assert window.import_export is installed


def test_export_writes_no_secret_or_local_id(window: MainWindow, installed: ImportExport, tmp_path: Path) -> None:
    workflow, instance_id, connection_id = open_shared(window)
    out = tmp_path / "out.graph.json"

    assert installed.export_to(out)

    text = out.read_text(encoding="utf-8")
    assert SECRET not in text
    for local_id in (instance_id, connection_id, workflow.id, window.store.workspace_id):
        assert local_id not in text
    assert json.loads(text)["credentials"][0]["slot"] == "openai-work"


def test_export_file_mode_follows_umask(window: MainWindow, installed: ImportExport, tmp_path: Path) -> None:
    open_shared(window)
    out = tmp_path / "out.graph.json"
    mask = os.umask(0)
    os.umask(mask)

    assert installed.export_to(out)

    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_export_failure_names_the_step(window: MainWindow, installed: ImportExport, tmp_path: Path) -> None:
    window.show_document(shared_workflow("no-such-instance", "no-such-connection"), None)
    out = tmp_path / "never.json"

    assert not installed.export_to(out)

    assert not out.exists()
    assert [path for path, _message in installed.last_problems] == ["steps[0].config", "steps[1].config.connection_id"]
    assert "no-such-instance" in window.last_error


def test_import_with_errors_keeps_document(window: MainWindow, installed: ImportExport, tmp_path: Path) -> None:
    workflow, _instance, _connection = open_shared(window)
    out = tmp_path / "graph.json"
    installed.export_to(out)
    data = json.loads(out.read_text(encoding="utf-8"))
    data["workflow"]["steps"][1]["config"]["temperature"] = 7
    out.write_text(json.dumps(data), encoding="utf-8")

    assert installed.import_file(out) is None

    assert "workflow.steps[1].config.temperature" in window.last_error
    assert installed.last_problems[0][0] == "workflow.steps[1].config.temperature"
    assert window.document.workflow == workflow


def test_import_auto_match_opens_new_draft(
    window: MainWindow, installed: ImportExport, tmp_path: Path, qtbot: Any
) -> None:
    workflow, instance_id, connection_id = open_shared(window)
    out = tmp_path / "graph.json"
    installed.export_to(out)
    workflows = install_workflow_library(window)

    dialog = installed.import_file(out)
    assert dialog is not None
    assert dialog.unchosen() == []
    assert dialog.ok_button.isEnabled()
    with qtbot.waitSignal(installed.sig_imported) as imported:
        dialog.accept()

    new_id = imported.args[0]
    assert new_id != workflow.id
    assert window.document.workflow_id == new_id
    issues = window.document.workflow.step("issues")
    ask = window.document.workflow.step("ask")
    assert isinstance(issues, McpCallStep)
    assert isinstance(ask, LlmCallStep)
    assert issues.config.instance_id == instance_id
    assert ask.config.connection_id == connection_id
    assert window.store.get_draft(new_id) == window.document.workflow
    assert workflows.panel.item_for(new_id) is not None


def test_import_asks_when_ambiguous(window: MainWindow, installed: ImportExport, tmp_path: Path, qtbot: Any) -> None:
    _workflow, _instance_id, _connection_id = open_shared(window)
    out = tmp_path / "graph.json"
    installed.export_to(out)
    second = window.store.add_mcp_instance(name="GitHub mirror", transport="http", url=GITHUB_URL)

    dialog = installed.import_file(out)
    assert dialog is not None
    combo = dialog.server_combos[GITHUB_URL]

    assert combo.currentData() == CHOOSE
    assert dialog.unchosen() == [GITHUB_URL]
    assert not dialog.ok_button.isEnabled()
    assert GITHUB_URL in dialog.status_label.text()
    combo.setCurrentIndex(combo.findData(second))
    assert dialog.ok_button.isEnabled()
    with qtbot.waitSignal(installed.sig_imported):
        dialog.accept()

    issues = window.document.workflow.step("issues")
    assert isinstance(issues, McpCallStep)
    assert issues.config.instance_id == second


def test_import_leave_unbound(window: MainWindow, installed: ImportExport, tmp_path: Path, qtbot: Any) -> None:
    open_shared(window)
    out = tmp_path / "graph.json"
    installed.export_to(out)
    window.store.add_mcp_instance(name="GitHub mirror", transport="http", url=GITHUB_URL)
    dialog = installed.import_file(out)
    assert dialog is not None

    combo = dialog.server_combos[GITHUB_URL]
    combo.setCurrentIndex(combo.findText(UNBOUND_SERVER_TEXT))
    with qtbot.waitSignal(installed.sig_imported):
        dialog.accept()

    issues = window.document.workflow.step("issues")
    assert isinstance(issues, McpCallStep)
    assert issues.config.instance_id is None
    assert issues.config.server_url == GITHUB_URL


def test_unbound_stdio_choice_names_the_command(window: MainWindow, installed: ImportExport, tmp_path: Path) -> None:
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
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(graph), encoding="utf-8")

    dialog = installed.import_file(path)
    assert dialog is not None
    combo = dialog.server_combos["stdio:sh -c 'echo hi'"]
    texts = [combo.itemText(index) for index in range(combo.count())]

    assert "Leave unbound (run this command on this machine)" in texts
    assert UNBOUND_SERVER_TEXT not in texts
    dialog.reject()


def test_cancelled_import_creates_nothing(window: MainWindow, installed: ImportExport, tmp_path: Path) -> None:
    workflow, _instance, _connection = open_shared(window)
    out = tmp_path / "graph.json"
    installed.export_to(out)
    before = library.list_workflows(window.store)

    dialog = installed.import_file(out)
    assert dialog is not None
    dialog.reject()

    assert library.list_workflows(window.store) == before
    assert window.document.workflow == workflow
