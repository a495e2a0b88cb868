"""The Connections panel: list, create, sign in, test, rotate, see where used and delete connections.

When secrets live in the encrypted-file fallback, a banner states it. While that file is locked, the
banner has a passphrase field. The passphrase only unlocks the vault in memory and is never written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio import secrets
from studio.panels.connections.dialog import ConnectionDialog, ConnectionForm
from studio.secrets.checks import check_connection
from studio.secrets.oauth import create_oauth_connection, sign_in
from studio.secrets.oauth_flow import BrowserOpener
from studio.secrets.status import ConnectionRow, connection_rows
from studio.secrets.usage import ConnectionUsage, where_used
from studio.store import Store

logger = logging.getLogger(__name__)

COLUMNS = ("Name", "Kind", "Provider", "Status", "Expiry")
VaultFactory = Callable[[str | None], secrets.SecretVault]
"""Opens the workspace vault; the argument is a passphrase for the encrypted file, or None."""
Confirm = Callable[[str, str], bool]
AskSecret = Callable[[str], str | None]


class ConnectionsPanel(QWidget):
    """Lists the workspace's connections and runs their actions; no secret is ever shown."""

    sig_connections_changed = Signal()
    """Emitted after a connection was created, rotated, signed in, tested or deleted."""
    sig_check_finished = Signal(str, str)
    """Emitted with (connection id, verdict) when a connection test ends."""
    sig_sign_in_finished = Signal(str, bool)
    """Emitted with (connection id, success) when a sign-in ends."""
    sig_vault_unlocked = Signal()
    """Emitted when the passphrase unlocked the encrypted secrets file."""
    sig_error_shown = Signal(str)
    """Emitted with the message whenever the panel shows an error."""

    def __init__(
        self,
        store: Store,
        *,
        vault_factory: VaultFactory | None = None,
        browser_opener: BrowserOpener | None = None,
        open_vault_now: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        """Build the panel; ``open_vault_now`` False defers opening the vault to :meth:`ensure_vault`."""
        super().__init__(parent)
        self.store = store
        self.vault: secrets.SecretVault | None = None
        self.browser_opener = browser_opener
        self.confirm: Confirm = self._confirm_with_message_box
        """Asks a yes/no question (title, text); replaceable so tests can answer."""
        self.ask_secret: AskSecret = self._ask_secret_with_dialog
        """Asks for a new secret (connection name); None when cancelled."""
        self.last_usages: list[ConnectionUsage] = []
        self._vault_factory = vault_factory or self._open_default_vault
        self._tasks: set[asyncio.Future[Any]] = set()
        self._sign_in_task: asyncio.Future[Any] | None = None
        self._vault_attempted = False
        self._build()
        if open_vault_now:
            self.ensure_vault()
        self.refresh()

    # -- layout ---------------------------------------------------------------------------------

    def _build(self) -> None:
        self.banner = QFrame(self)
        self.banner.setFrameShape(QFrame.Shape.StyledPanel)
        self.banner_label = QLabel(self.banner)
        self.banner_label.setWordWrap(True)
        self.passphrase_edit = QLineEdit(self.banner)
        self.passphrase_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase_edit.setPlaceholderText("Passphrase of the encrypted secrets file")
        self.unlock_button = QPushButton("Unlock", self.banner)
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.addWidget(self.banner_label, 1)
        banner_layout.addWidget(self.passphrase_edit)
        banner_layout.addWidget(self.unlock_button)

        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setVisible(False)

        self.add_button = QPushButton("Add…", self)
        self.sign_in_button = QPushButton("Sign in", self)
        self.test_button = QPushButton("Test", self)
        self.rotate_button = QPushButton("Rotate…", self)
        self.usage_button = QPushButton("Where used", self)
        self.delete_button = QPushButton("Delete", self)
        buttons = QHBoxLayout()
        for button in (
            self.add_button,
            self.sign_in_button,
            self.test_button,
            self.rotate_button,
            self.usage_button,
            self.delete_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)

        self.message_label = QLabel(self)
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message_label)

        self.unlock_button.clicked.connect(self._on_unlock_clicked)
        self.passphrase_edit.returnPressed.connect(self._on_unlock_clicked)
        self.add_button.clicked.connect(self._on_add_clicked)
        self.sign_in_button.clicked.connect(self.sign_in_selected)
        self.test_button.clicked.connect(self.test_selected)
        self.rotate_button.clicked.connect(self.rotate_selected)
        self.usage_button.clicked.connect(self.show_usage_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.table.itemSelectionChanged.connect(self._update_buttons)

    # -- vault ----------------------------------------------------------------------------------

    def ensure_vault(self) -> None:
        """Open the vault once, without a passphrase (the environment may supply one).

        Opening the encrypted file costs a key derivation (about 1-2 s), so the window defers it until
        the panel is first shown.
        """
        if not self._vault_attempted:
            self._vault_attempted = True
            self._open_vault(None)

    def _open_default_vault(self, passphrase: str | None) -> secrets.SecretVault:
        return secrets.open_vault(self.store.workspace_slug(), passphrase=passphrase)

    def _open_vault(self, passphrase: str | None) -> bool:
        try:
            self.vault = self._vault_factory(passphrase)
        except secrets.VaultUnavailableError as error:
            self.vault = None
            self._show_banner(f"Secrets are locked. {error}", locked=True)
            return False
        except secrets.SecretsError as error:
            self.vault = None
            self._show_banner("Secrets are locked: enter the passphrase of the encrypted secrets file.", locked=True)
            self._show_message(str(error), error=True)
            return False
        if self.vault.is_encrypted_fallback:
            self._show_banner(
                f"No OS keychain is available, so secrets are stored in the {self.vault.backend_description()}, "
                "encrypted with your passphrase.",
                locked=False,
            )
        else:
            self.banner.hide()
        self._update_buttons()
        return True

    def _show_banner(self, text: str, *, locked: bool) -> None:
        self.banner_label.setText(text)
        self.passphrase_edit.setVisible(locked)
        self.unlock_button.setVisible(locked)
        self.banner.show()
        self._update_buttons()

    def unlock(self, passphrase: str) -> bool:
        """Unlock the encrypted secrets file with ``passphrase``; show the error when it does not match."""
        if not passphrase.strip():
            self._show_message("Enter the passphrase of the encrypted secrets file.", error=True)
            return False
        unlocked = self._open_vault(passphrase)
        self.passphrase_edit.clear()
        if unlocked:
            self._show_message("Secrets unlocked.")
            self.sig_vault_unlocked.emit()
        return unlocked

    # -- list -----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the connection list from the store, keeping the selection."""
        selected = self.selected_id()
        self.rows: list[ConnectionRow] = connection_rows(self.store)
        self.table.setRowCount(len(self.rows))
        for index, row in enumerate(self.rows):
            values = (row.name, row.kind, row.provider or "", row.status, row.expiry_text)
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.ItemDataRole.UserRole, row.id)
                if column == 3 and row.status_detail:
                    item.setToolTip(row.status_detail)
                self.table.setItem(index, column, item)
            if row.id == selected:
                self.table.selectRow(index)
        self._update_buttons()

    def select(self, id_or_name: str) -> None:
        for index, row in enumerate(self.rows):
            if id_or_name in (row.id, row.name):
                self.table.selectRow(index)
                return

    def selected_id(self) -> str | None:
        items = self.table.selectedItems()
        return str(items[0].data(Qt.ItemDataRole.UserRole)) if items else None

    def selected_row(self) -> ConnectionRow | None:
        selected = self.selected_id()
        return next((row for row in getattr(self, "rows", []) if row.id == selected), None)

    def _update_buttons(self) -> None:
        row = self.selected_row()
        unlocked = self.vault is not None
        self.add_button.setEnabled(unlocked)
        signing_in = self._sign_in_task is not None and not self._sign_in_task.done()
        self.sign_in_button.setEnabled(signing_in or (unlocked and row is not None and row.kind == "oauth2"))
        self.test_button.setEnabled(unlocked and row is not None)
        self.rotate_button.setEnabled(unlocked and row is not None and row.kind not in ("oauth2", "none"))
        self.usage_button.setEnabled(row is not None)
        self.delete_button.setEnabled(unlocked and row is not None)

    # -- actions --------------------------------------------------------------------------------

    def create_connection(self, form: ConnectionForm) -> str | None:
        """Create a connection from the dialog's values; start the sign-in when the form requests it. Return its id."""
        vault = self._require_vault()
        if vault is None:
            return None
        try:
            if form.kind == "oauth2":
                connection = create_oauth_connection(
                    self.store,
                    vault,
                    form.name,
                    mcp_server_url=form.mcp_server_url,
                    authorization_endpoint=form.authorization_endpoint,
                    token_endpoint=form.token_endpoint,
                    client_id=form.client_id,
                    client_secret=form.client_secret,
                    scopes=form.scopes,
                    provider=form.provider,
                    base_url=form.base_url,
                )
            else:
                connection = secrets.create_connection(
                    self.store, vault, form.name, form.kind, form.provider, form.base_url, form.secret, form.settings()
                )
        except secrets.SecretsError as error:
            self._show_message(str(error), error=True)
            return None
        self.refresh()
        self.select(connection.id)
        self._show_message(f"Created connection {connection.name}; its secret is in {vault.backend_description()}.")
        self.sig_connections_changed.emit()
        if form.sign_in:
            self.sign_in_selected()
        return connection.id

    def sign_in_selected(self) -> None:
        """Start the browser sign-in of the selected OAuth connection, or cancel the one that is waiting."""
        if self._sign_in_task is not None and not self._sign_in_task.done():
            self._sign_in_task.cancel()
            return
        row, vault = self.selected_row(), self._require_vault()
        if row is None or vault is None:
            return
        self._show_message(f"Signing in {row.name}: finish the sign-in in the browser…")
        self.sign_in_button.setText("Cancel sign-in")
        self._sign_in_task = self._spawn(self._sign_in(row, vault))

    async def _sign_in(self, row: ConnectionRow, vault: secrets.SecretVault) -> None:
        try:
            state = await sign_in(self.store, vault, row.id, opener=self.browser_opener)
        except secrets.SecretsError as error:
            self._show_message(str(error), error=True)
            self.sig_sign_in_finished.emit(row.id, False)
            return
        except asyncio.CancelledError:
            self._show_message(f"Sign-in of {row.name} cancelled.")
            self.sig_sign_in_finished.emit(row.id, False)
            raise
        finally:
            self.sign_in_button.setText("Sign in")
            self._update_buttons()
        self.refresh()
        expiry = "" if state.expires_at is None else " until " + (self.selected_row() or row).expiry_text
        self._show_message(f"Signed in {row.name}; the token is valid{expiry}.")
        self.sig_connections_changed.emit()
        self.sig_sign_in_finished.emit(row.id, True)

    def test_selected(self) -> None:
        """Test the selected connection with one real request; the verdict shows in the Status column."""
        row, vault = self.selected_row(), self._require_vault()
        if row is None or vault is None:
            return
        self._show_message(f"Testing {row.name}…")
        self._spawn(self._test(row, vault))

    async def _test(self, row: ConnectionRow, vault: secrets.SecretVault) -> None:
        result = await check_connection(self.store, vault, row.id)
        self.refresh()
        self._show_message(f"{row.name}: {result.verdict}. {result.reason}", error=not result.ok)
        self.sig_connections_changed.emit()
        self.sig_check_finished.emit(row.id, result.verdict)

    def rotate_selected(self) -> None:
        """Ask for a new secret and store it in place of the old one."""
        row, vault = self.selected_row(), self._require_vault()
        if row is None or vault is None:
            return
        secret = self.ask_secret(row.name)
        if not secret:
            return
        try:
            secrets.rotate_secret(self.store, vault, row.id, secret)
        except secrets.SecretsError as error:
            self._show_message(str(error), error=True)
            return
        self._show_message(f"Replaced the secret of {row.name}. Test it to check the new value.")
        self.sig_connections_changed.emit()

    def show_usage_selected(self) -> list[ConnectionUsage]:
        """Show which workflows and MCP instances use the selected connection, and return them."""
        row = self.selected_row()
        if row is None:
            return []
        self.last_usages = where_used(self.store, row.id)
        if self.last_usages:
            lines = "\n".join(f"• {usage.describe()}" for usage in self.last_usages)
            self._show_message(f"{row.name} is used by:\n{lines}")
        else:
            self._show_message(f"No workflow or MCP instance uses {row.name}.")
        return self.last_usages

    def delete_selected(self) -> bool:
        """Delete the selected connection after a confirmation that lists where it is used."""
        row, vault = self.selected_row(), self._require_vault()
        if row is None or vault is None:
            return False
        usages = where_used(self.store, row.id)
        if usages:
            listed = "\n".join(f"• {usage.describe()}" for usage in usages)
            question = (
                f"{row.name} is still used by:\n{listed}\n\nThese will fail until they get another connection. "
                "Delete it anyway?"
            )
        else:
            question = f"Delete {row.name} and its secret?"
        if not self.confirm("Delete connection", question):
            return False
        try:
            secrets.delete_connection(self.store, vault, row.id, force=True)
        except secrets.SecretsError as error:
            self._show_message(str(error), error=True)
            return False
        self.refresh()
        self._show_message(f"Deleted {row.name} and its secret.")
        self.sig_connections_changed.emit()
        return True

    # -- helpers --------------------------------------------------------------------------------

    def _require_vault(self) -> secrets.SecretVault | None:
        self.ensure_vault()
        if self.vault is None:
            self._show_message("Unlock the secrets first: enter the passphrase in the banner above.", error=True)
        return self.vault

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_task_error)
        return task

    def _show_message(self, text: str, *, error: bool = False) -> None:
        self.message_label.setStyleSheet("color: #b00020;" if error else "")
        self.message_label.setText(text)
        if error:
            logger.warning("Connections panel: %s", text)
            self.sig_error_shown.emit(text)

    def _confirm_with_message_box(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def _ask_secret_with_dialog(self, name: str) -> str | None:
        secret, accepted = QInputDialog.getText(
            self, "Rotate secret", f"New secret for {name}:", QLineEdit.EchoMode.Password
        )
        return secret if accepted and secret else None

    # -- slots ----------------------------------------------------------------------------------

    def _on_unlock_clicked(self) -> None:
        self.unlock(self.passphrase_edit.text())

    def _on_add_clicked(self) -> None:
        dialog = ConnectionDialog(self)
        if dialog.exec() == ConnectionDialog.DialogCode.Accepted:
            self.create_connection(dialog.form())


def _log_task_error(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("Connections panel task failed", exc_info=task.exception())
