"""The Connections panel against a real store, vault and loopback servers: list, create, test, sign in, delete."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import keyring
import pytest
import qasync
from keyring.backends import fail
from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QMainWindow
from pytestqt.qtbot import QtBot

from studio.panels.connections import ConnectionDialog, ConnectionForm, ConnectionsPanel, install_connections_panel
from studio.secrets import SecretVault, encrypted_file_vault
from studio.store import Store
from tests.conftest import build_workflow
from tests.fakes.oauth_server import FakeOAuthServer, oauth_server, protected_mcp_server
from tests.fakes.openai_server import FakeOpenAIServer, openai_server
from tests.secrets.keyring_backends import PASSPHRASE, MemoryKeyring

KEY = "sk-panel-canary-8Tq1Xw"


@pytest.fixture
def keychain() -> MemoryKeyring:
    return MemoryKeyring()


@pytest.fixture
def panel(qtbot: QtBot, store: Store, keychain: MemoryKeyring, qasync_loop: qasync.QEventLoop) -> ConnectionsPanel:
    widget = ConnectionsPanel(store, vault_factory=lambda _passphrase: SecretVault("local", keychain))
    qtbot.addWidget(widget)
    widget.browser_opener = follow_in_browser
    return widget


@pytest.fixture
def llm_server() -> Iterator[FakeOpenAIServer]:
    with openai_server(api_key=KEY) as server:
        yield server


@pytest.fixture
def auth_server() -> Iterator[FakeOAuthServer]:
    with oauth_server() as server:
        yield server


async def follow_in_browser(url: str) -> httpx.Response:
    async with httpx.AsyncClient(follow_redirects=True, timeout=10.0) as client:
        return await client.get(url)


async def next_emission(signal: SignalInstance, timeout: float = 20.0) -> tuple[Any, ...]:
    """Wait on the running qasync loop for the next emission of ``signal`` and return its arguments."""
    future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

    def on_emitted(*args: Any) -> None:
        if not future.done():
            future.set_result(args)

    signal.connect(on_emitted)
    try:
        return await asyncio.wait_for(future, timeout)
    finally:
        signal.disconnect(on_emitted)


def run_and_wait(loop: qasync.QEventLoop, signal: SignalInstance, action: Any) -> tuple[Any, ...]:
    async def scenario() -> tuple[Any, ...]:
        waiting = asyncio.ensure_future(next_emission(signal))
        action()
        return await waiting

    result: tuple[Any, ...] = loop.run_until_complete(scenario())
    return result


def table_text(panel: ConnectionsPanel) -> list[list[str]]:
    return [
        [panel.table.item(row, column).text() for column in range(panel.table.columnCount())]
        for row in range(panel.table.rowCount())
    ]


def test_create_api_key_lists_row(panel: ConnectionsPanel, keychain: MemoryKeyring, llm_server: FakeOpenAIServer) -> None:
    form = ConnectionForm(name="OpenAI", kind="api_key", provider="openai", base_url=llm_server.base_url, secret=KEY)

    connection_id = panel.create_connection(form)

    assert connection_id is not None
    assert table_text(panel) == [["OpenAI", "api_key", "openai", "untested", ""]]
    assert panel.selected_id() == connection_id
    assert list(keychain.values.values()) == [KEY]
    assert KEY not in panel.message_label.text()


def test_create_reports_invalid_input(panel: ConnectionsPanel, qtbot: QtBot) -> None:
    with qtbot.waitSignal(panel.sig_error_shown) as shown:
        result = panel.create_connection(ConnectionForm(name="Broken", kind="basic", secret=KEY))

    assert result is None
    assert "settings.username" in shown.args[0]
    assert panel.table.rowCount() == 0


def test_dialog_fields_follow_kind(qtbot: QtBot) -> None:
    dialog = ConnectionDialog()
    qtbot.addWidget(dialog)

    dialog.set_kind("api_key")
    api_key_fields = dialog.visible_fields()
    dialog.set_kind("basic")
    basic_fields = dialog.visible_fields()
    dialog.set_kind("oauth2")
    oauth_fields = dialog.visible_fields()
    dialog.mcp_url_edit.setText("http://127.0.0.1:9/mcp")
    dialog.name_edit.setText("Remote")
    form = dialog.form()

    assert "Secret" in api_key_fields
    assert "Header" in api_key_fields
    assert "User name" not in api_key_fields
    assert "User name" in basic_fields
    assert "Secret" not in oauth_fields
    assert "MCP server URL" in oauth_fields
    assert "Token endpoint" in oauth_fields
    assert form.kind == "oauth2"
    assert form.mcp_server_url == "http://127.0.0.1:9/mcp"
    assert form.sign_in


def test_test_button_shows_verdict(
    panel: ConnectionsPanel, llm_server: FakeOpenAIServer, qasync_loop: qasync.QEventLoop
) -> None:
    panel.create_connection(
        ConnectionForm(name="OpenAI", kind="api_key", provider="openai", base_url=llm_server.base_url, secret=KEY)
    )
    panel.create_connection(
        ConnectionForm(
            name="Wrong", kind="api_key", provider="openai", base_url=llm_server.base_url, secret="sk-wrong-panel-3"
        )
    )

    panel.select("OpenAI")
    good = run_and_wait(qasync_loop, panel.sig_check_finished, panel.test_button.click)
    panel.select("Wrong")
    bad = run_and_wait(qasync_loop, panel.sig_check_finished, panel.test_button.click)

    assert good[1] == "works"
    assert bad[1] == "rejected"
    assert [row[3] for row in table_text(panel)] == ["works", "rejected"]
    assert "rotate the secret" in panel.message_label.text()


def test_oauth_sign_in_shows_expiry(
    panel: ConnectionsPanel, auth_server: FakeOAuthServer, qasync_loop: qasync.QEventLoop
) -> None:
    client = auth_server.add_client()
    form = ConnectionForm(
        name="Tokens",
        kind="oauth2",
        authorization_endpoint=f"{auth_server.base_url}/authorize",
        token_endpoint=f"{auth_server.base_url}/token",
        client_id=client.client_id,
        sign_in=True,
    )

    finished = run_and_wait(qasync_loop, panel.sig_sign_in_finished, lambda: panel.create_connection(form))

    assert finished[1] is True
    (row,) = table_text(panel)
    assert row[:4] == ["Tokens", "oauth2", "", "signed in"]
    assert row[4].endswith("UTC")
    assert panel.message_label.text().startswith("Signed in Tokens; the token is valid until ")
    assert not panel.rotate_button.isEnabled()
    assert panel.sign_in_button.isEnabled()


def test_mcp_sign_in_from_dialog(
    panel: ConnectionsPanel, auth_server: FakeOAuthServer, qasync_loop: qasync.QEventLoop, qtbot: QtBot
) -> None:
    dialog = ConnectionDialog()
    qtbot.addWidget(dialog)
    dialog.name_edit.setText("Remote tools")
    dialog.set_kind("oauth2")
    with protected_mcp_server(auth_server) as mcp_server:
        dialog.mcp_url_edit.setText(mcp_server.url)
        form = dialog.form()

        finished = run_and_wait(qasync_loop, panel.sig_sign_in_finished, lambda: panel.create_connection(form))

    assert finished[1] is True, panel.message_label.text()
    (row,) = table_text(panel)
    assert row[:4] == ["Remote tools", "oauth2", "", "signed in"]
    assert [r.path for r in auth_server.requests].count("/register") == 1


def test_sign_in_can_be_cancelled(
    panel: ConnectionsPanel, auth_server: FakeOAuthServer, qasync_loop: qasync.QEventLoop
) -> None:
    form = ConnectionForm(
        name="Abandoned",
        kind="oauth2",
        authorization_endpoint=f"{auth_server.base_url}/authorize",
        token_endpoint=f"{auth_server.base_url}/token",
        client_id=auth_server.add_client().client_id,
        sign_in=True,
    )

    async def scenario() -> tuple[Any, ...]:
        browser_opened = asyncio.Event()
        panel.browser_opener = lambda _url: browser_opened.set()
        waiting = asyncio.ensure_future(next_emission(panel.sig_sign_in_finished))
        panel.create_connection(form)
        await browser_opened.wait()
        label_while_waiting = panel.sign_in_button.text()
        panel.sign_in_button.click()
        return (label_while_waiting, *await waiting)

    label, _connection_id, succeeded = qasync_loop.run_until_complete(scenario())

    assert label == "Cancel sign-in"
    assert succeeded is False
    assert panel.sign_in_button.text() == "Sign in"
    assert panel.message_label.text() == "Sign-in of Abandoned cancelled."
    assert table_text(panel)[0][3] == "not signed in"


def test_usage_and_delete_warning(panel: ConnectionsPanel, store: Store, keychain: MemoryKeyring) -> None:
    connection_id = panel.create_connection(ConnectionForm(name="Shared", kind="bearer", secret=KEY))
    assert connection_id is not None
    step = {"id": "ask", "type": "llm_call", "config": {"connection_id": connection_id, "prompt": "hi"}}
    store.save_draft(build_workflow([step], name="Questions"))
    questions: list[str] = []
    answers = iter([False, True])

    def confirm(_title: str, text: str) -> bool:
        questions.append(text)
        return next(answers)

    panel.confirm = confirm
    usages = panel.show_usage_selected()
    usage_message = panel.message_label.text()
    kept = panel.delete_selected()
    deleted = panel.delete_selected()

    assert [usage.describe() for usage in usages] == ["workflow 'Questions' (draft, steps ask)"]
    assert "workflow 'Questions' (draft, steps ask)" in usage_message
    assert not kept
    assert "still used by" in questions[0]
    assert "workflow 'Questions'" in questions[0]
    assert deleted
    assert panel.table.rowCount() == 0
    assert keychain.values == {}


def test_rotate_replaces_secret(panel: ConnectionsPanel, keychain: MemoryKeyring) -> None:
    panel.create_connection(ConnectionForm(name="Gateway", kind="bearer", secret=KEY))
    panel.ask_secret = lambda _name: "sk-rotated-panel-9Lm"

    panel.rotate_button.click()

    assert list(keychain.values.values()) == ["sk-rotated-panel-9Lm"]
    assert "Replaced the secret of Gateway" in panel.message_label.text()


@pytest.fixture
def locked_file_vault(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No OS keychain, the file backend chosen, an existing secrets file, and no passphrase in the environment."""
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    path = tmp_path / "vault" / "secrets.cfg"
    encrypted_file_vault("local", path, PASSPHRASE, reuse=False).set("connection/existing", KEY)
    monkeypatch.setenv("STUDIO_SECRETS_BACKEND", "file")
    monkeypatch.setenv("STUDIO_SECRETS_FILE", str(path))
    monkeypatch.delenv("STUDIO_SECRETS_PASSPHRASE", raising=False)
    yield path
    keyring.set_keyring(previous)


def test_encrypted_file_banner_and_unlock(qtbot: QtBot, store: Store, locked_file_vault: Path) -> None:
    panel = ConnectionsPanel(store)
    qtbot.addWidget(panel)

    locked_visible = panel.passphrase_edit.isVisibleTo(panel)
    locked_add = panel.add_button.isEnabled()
    with qtbot.waitSignal(panel.sig_error_shown) as wrong:
        wrong_result = panel.unlock("not the passphrase 17")
    with qtbot.waitSignal(panel.sig_vault_unlocked):
        right_result = panel.unlock(PASSPHRASE)

    assert panel.banner.isVisibleTo(panel)
    assert locked_visible
    assert not locked_add
    assert not wrong_result
    assert "does not unlock the encrypted secrets file" in wrong.args[0]
    assert "not the passphrase 17" not in wrong.args[0]
    assert right_result
    assert "encrypted file" in panel.banner_label.text()
    assert str(locked_file_vault) in panel.banner_label.text()
    assert not panel.passphrase_edit.isVisibleTo(panel)
    assert panel.passphrase_edit.text() == ""
    assert panel.add_button.isEnabled()
    database = b"".join(p.read_bytes() for p in Path(str(store.path)).parent.glob("studio.db*"))
    assert PASSPHRASE.encode() not in database
    assert PASSPHRASE.encode() not in locked_file_vault.read_bytes()


def test_install_adds_dock_and_menu(qtbot: QtBot, store: Store, keychain: MemoryKeyring) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(keychain)
    try:
        window = QMainWindow()
        qtbot.addWidget(window)
        window.store = store  # type: ignore[attr-defined]
        view_menu = window.menuBar().addMenu("&View")

        panel = install_connections_panel(window)
    finally:
        keyring.set_keyring(previous)

    dock = window.findChild(type(window.connections_dock), "connections-dock")  # type: ignore[attr-defined]
    assert dock is not None
    assert dock.widget() is panel
    assert dock.isHidden()
    assert panel.vault is None, "the vault opens when the dock is first shown"
    action = next(a for a in view_menu.actions() if a.text() == "&Connections")
    window.show()
    keyring.set_keyring(keychain)
    try:
        with qtbot.waitSignal(window.connections_dock.visibilityChanged):  # type: ignore[attr-defined]
            action.trigger()
    finally:
        keyring.set_keyring(previous)
    assert not dock.isHidden()
    assert panel.vault is not None
    assert not panel.banner.isVisibleTo(panel)
    assert json.dumps(table_text(panel)) == "[]"
