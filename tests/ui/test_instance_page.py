"""The MCP instance page and servers dock against real servers: the studio tool server, server-everything,
and servers that fail in each way a user meets (wrong command, exit at start, silence, HTML, 401)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtWidgets import QLineEdit, QMainWindow
from pytestqt.qtbot import QtBot

from studio.mcp.catalog import add_entry
from studio.mcp.instances import Profile, Timeouts, create_instance
from studio.mcp.tool_cache import tool_entries
from studio.panels.mcp import InstancePage, McpPanel, install_mcp_panels, quick_add_tools
from studio.store import Store
from tests.engine.mcp_fixtures import EVERYTHING_ENTRY, html_server  # noqa: F401

ECHO_SERVER = Path(__file__).resolve().parents[1] / "mcp" / "echo_server.py"


def make_page(qtbot: QtBot, store: Store, instance_id: str) -> InstancePage:
    page = InstancePage(store, instance_id)
    qtbot.addWidget(page)
    return page


def stdio_instance(store: Store, name: str, command: str, args: list[str], **options: object) -> str:
    entry = add_entry(store, name, "stdio", command=command, args=args)
    return create_instance(store, entry, **options).id  # type: ignore[arg-type]


@pytest.fixture
def token_server() -> Iterator[str]:
    """URL of the echo server on streamable HTTP, which returns HTTP 401 without its bearer token."""
    process = subprocess.Popen(
        [sys.executable, str(ECHO_SERVER), "--http"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "ECHO_TOKEN": "page-token-8812"},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_page_shows_tool_server(qtbot: QtBot, qasync_loop: qasync.QEventLoop, store: Store, tmp_path: Path) -> None:
    instance = create_instance(
        store, "builtin:studio-tools", name="tools", profiles=[Profile("default", args=("--root", str(tmp_path)))]
    )
    page = make_page(qtbot, store, instance.id)

    with qtbot.waitSignal(page.sig_started):
        started = qasync_loop.run_until_complete(page.start_instance())

    assert started
    assert page.status_label.text() == "Running"
    assert page.server_name_label.text() == "studio-tools"
    assert page.server_version_label.text() == "0.1.0"
    assert page.protocol_label.text()
    assert "tools" in page.capabilities_label.text()
    tools = [page.tool_list.item(row).text() for row in range(page.tool_list.count())]
    assert "text_stats" in tools
    assert {entry.tool_name for entry in tool_entries(store)} == set(tools)

    page.select_tool("text_stats")
    assert '"text"' in page.input_schema_text.toPlainText()
    assert '"characters"' in page.output_schema_text.toPlainText()
    editor = page.form.editor("text")
    assert isinstance(editor, QLineEdit)
    editor.setText("one two two")
    with qtbot.waitSignal(page.sig_tool_result_shown) as shown:
        ok = qasync_loop.run_until_complete(page.call_selected_tool())

    assert ok
    assert shown.args == ["text_stats"]
    result = json.loads(page.result_text.toPlainText())
    assert result["value"]["words"] == 3
    assert result["is_error"] is False

    qasync_loop.run_until_complete(page.stop_instance())
    assert page.status_label.text() == "Stopped"
    assert page.start_button.isEnabled()


def test_form_reports_missing_field(qtbot: QtBot, qasync_loop: qasync.QEventLoop, store: Store) -> None:
    instance = create_instance(store, "builtin:studio-tools", name="tools")
    page = make_page(qtbot, store, instance.id)
    qasync_loop.run_until_complete(page.start_instance())
    try:
        page.select_tool("text_stats")
        ok = qasync_loop.run_until_complete(page.call_selected_tool())
    finally:
        qasync_loop.run_until_complete(page.stop_instance())

    assert not ok
    assert "field 'text' is required" in page.error_label.text()
    assert page.error_label.isVisibleTo(page)


def test_page_shows_everything_listings(qtbot: QtBot, qasync_loop: qasync.QEventLoop, store: Store) -> None:
    if not EVERYTHING_ENTRY.exists():
        pytest.fail(f"{EVERYTHING_ENTRY} is missing; run tools/bootstrap-test-deps.sh")
    instance_id = stdio_instance(store, "everything", "node", [str(EVERYTHING_ENTRY), "stdio"])
    page = make_page(qtbot, store, instance_id)

    started = qasync_loop.run_until_complete(page.start_instance())
    try:
        stderr = page.stderr_text.toPlainText()
        resources = page.resources_text.toPlainText()
        prompts = page.prompts_text.toPlainText()
        tools = [page.tool_list.item(row).text() for row in range(page.tool_list.count())]
        page.select_tool("echo")
        editor = page.form.editor("message")
        assert isinstance(editor, QLineEdit)
        editor.setText("hello page")
        qasync_loop.run_until_complete(page.call_selected_tool())
        result = page.result_text.toPlainText()
    finally:
        qasync_loop.run_until_complete(page.stop_instance())

    assert started
    assert page.server_name_label.text() == "mcp-servers/everything"
    assert "echo" in tools
    assert "architecture.md" in resources
    assert prompts.strip() not in ("", "(none)")
    assert "Starting default (STDIO) server" in stderr
    assert "hello page" in result


def test_stderr_lines_arrive_live(qtbot: QtBot, qasync_loop: qasync.QEventLoop, store: Store) -> None:
    instance_id = stdio_instance(store, "echo", sys.executable, [str(ECHO_SERVER)])
    page = make_page(qtbot, store, instance_id)
    qasync_loop.run_until_complete(page.start_instance())
    arrived: asyncio.Future[str] = qasync_loop.create_future()
    page.sig_stderr_line_shown.connect(lambda line: arrived.done() or arrived.set_result(line))
    try:
        page.select_tool("log_line")
        editor = page.form.editor("text")
        assert isinstance(editor, QLineEdit)
        editor.setText("live line 42")
        qasync_loop.run_until_complete(page.call_selected_tool())
        line = qasync_loop.run_until_complete(asyncio.wait_for(arrived, 10))
    finally:
        qasync_loop.run_until_complete(page.stop_instance())

    assert line == "live line 42"
    assert "echo server starting" in page.stderr_text.toPlainText()
    assert "live line 42" in page.stderr_text.toPlainText()


def test_wrong_command_shown(qtbot: QtBot, qasync_loop: qasync.QEventLoop, store: Store, tmp_path: Path) -> None:
    instance_id = stdio_instance(store, "broken", str(tmp_path / "no-such-server"), [])
    page = make_page(qtbot, store, instance_id)

    with qtbot.waitSignal(page.sig_failed) as failed:
        started = qasync_loop.run_until_complete(page.start_instance())

    assert not started
    assert page.status_label.text() == "Failed"
    assert "no-such-server' was not found" in failed.args[0]
    assert "Fix the command" in page.error_label.text()
    assert page.start_button.isEnabled()


def test_exit_at_start_shows_stderr(qtbot: QtBot, qasync_loop: qasync.QEventLoop, store: Store) -> None:
    script = "import sys; sys.stderr.write('config file missing: /etc/demo.toml\\n'); sys.exit(3)"
    instance_id = stdio_instance(store, "exits", sys.executable, ["-c", script])
    page = make_page(qtbot, store, instance_id)

    started = qasync_loop.run_until_complete(page.start_instance())

    assert not started
    assert "exited during startup" in page.error_label.text()
    assert "config file missing" in page.stderr_text.toPlainText()


def test_silent_server_times_out(qtbot: QtBot, qasync_loop: qasync.QEventLoop, store: Store) -> None:
    script = "import sys; sys.stdin.read()"
    instance_id = stdio_instance(store, "silent", sys.executable, ["-c", script], timeouts=Timeouts(connect_s=1.5))
    page = make_page(qtbot, store, instance_id)

    started = qasync_loop.run_until_complete(page.start_instance())

    assert not started
    assert "did not complete the MCP handshake within 1.5 s" in page.error_label.text()


def test_html_endpoint_explained(
    qtbot: QtBot,
    qasync_loop: qasync.QEventLoop,
    store: Store,
    html_server: str,  # noqa: F811
) -> None:
    entry = add_entry(store, "web page", "http", url=f"{html_server}/mcp")
    instance = create_instance(store, entry, timeouts=Timeouts(connect_s=10))
    page = make_page(qtbot, store, instance.id)

    started = qasync_loop.run_until_complete(page.start_instance())

    assert not started
    assert "HTML" in page.error_label.text()
    assert "Check that the server is running" in page.error_label.text()


def test_unauthorized_explained(qtbot: QtBot, qasync_loop: qasync.QEventLoop, store: Store, token_server: str) -> None:
    entry = add_entry(store, "token server", "http", url=token_server)
    instance = create_instance(store, entry, timeouts=Timeouts(connect_s=10))
    page = make_page(qtbot, store, instance.id)

    started = qasync_loop.run_until_complete(page.start_instance())

    assert not started
    assert "401" in page.error_label.text()
    assert "page-token-8812" not in page.error_label.text()


def test_panel_imports_and_starts(qtbot: QtBot, qasync_loop: qasync.QEventLoop, store: Store, tmp_path: Path) -> None:
    config = tmp_path / "claude_desktop_config.json"
    config.write_text(json.dumps({"mcpServers": {"studio": {"command": "studio-tools", "args": []}}}))
    window = QMainWindow()
    window.store = store  # type: ignore[attr-defined]
    qtbot.addWidget(window)
    panel = install_mcp_panels(window)

    report = panel.import_file(config)
    page = panel.show_instance(report.instances[0].id if report else "")
    with qtbot.waitSignal(panel.sig_tools_changed):
        qasync_loop.run_until_complete(page.start_instance())
    qasync_loop.run_until_complete(panel.stop_all())

    assert isinstance(panel, McpPanel)
    assert panel.instance_names() == ["studio"]
    assert panel.entry_names()[0] == "Studio tools"
    assert panel.dock is not None and panel.dock.objectName() == "mcp-servers-dock"
    assert "MCP" in [action.text().replace("&", "") for action in window.menuBar().actions()]
    assert any(tool.tool_name == "text_stats" for tool in quick_add_tools(store))
    assert page.state == "stopped"


def test_panel_rejects_bad_file(qtbot: QtBot, store: Store, tmp_path: Path) -> None:
    config = tmp_path / "broken.json"
    config.write_text("{not json")
    panel = McpPanel(store)
    qtbot.addWidget(panel)

    with qtbot.waitSignal(panel.sig_error_shown) as shown:
        report = panel.import_file(config)

    assert report is None
    assert "Import of broken.json failed" in shown.args[0]


def test_panel_keeps_instance_in_use(qtbot: QtBot, qasync_loop: qasync.QEventLoop, store: Store) -> None:
    from studio.model.document import workflow_from_data
    from studio.store import workflow_library as library

    instance = create_instance(store, "builtin:studio-tools", name="tools")
    step = {"id": "stats", "type": "mcp_call", "config": {"instance_id": instance.id, "tool": "text_stats"}}
    library.save_draft(store, workflow_from_data({"schema_version": 1, "name": "Uses", "steps": [step]}, "test"))
    panel = McpPanel(store)
    qtbot.addWidget(panel)

    with qtbot.waitSignal(panel.sig_error_shown) as shown:
        qasync_loop.run_until_complete(panel.remove_instance(instance.id))

    assert "used by workflow 'Uses' (draft, steps stats)" in shown.args[0]
    assert panel.instance_names() == ["tools"]
