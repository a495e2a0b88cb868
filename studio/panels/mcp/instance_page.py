"""The page of one MCP instance: start/stop, handshake, tools with schemas and a try-it form, resources,
prompts and live stderr."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from studio.engine.executors.mcp_errors import McpConnectError, McpError, McpTimeoutError
from studio.engine.executors.mcp_model import ToolInfo
from studio.mcp.catalog import detect_remote_transport
from studio.mcp.errors import McpConfigError, McpNotFoundError, McpProbeError
from studio.mcp.session import Handshake, InstanceSession, Listing
from studio.panels.mcp.schema_form import FormError, SchemaForm
from studio.secrets import SecretsError
from studio.store import Store

logger = logging.getLogger(__name__)

MAX_STDERR_BLOCKS = 2000


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _monospace(edit: QPlainTextEdit) -> QPlainTextEdit:
    edit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    edit.setReadOnly(True)
    return edit


def error_hint(error: BaseException, transport: str) -> str:
    """Return what the user should do next for an error raised while starting or calling a server."""
    if isinstance(error, McpConfigError | McpNotFoundError):
        return "Edit the instance's profile or bindings, then start it again."
    if isinstance(error, SecretsError):
        return "Unlock the secrets vault (OS keychain, or STUDIO_SECRETS_PASSPHRASE for the encrypted file)."
    if isinstance(error, McpProbeError):
        return "Fix the instance's URL or bind the right connection, then start it again."
    if isinstance(error, McpTimeoutError):
        return "Raise the instance's call timeout, or check the Stderr tab for what the server is doing."
    if isinstance(error, McpConnectError) and transport == "stdio":
        return "Fix the command, arguments or environment; the Stderr tab shows what the server wrote."
    if isinstance(error, McpConnectError):
        return "Check that the server is running, the URL is its MCP endpoint and the bound token is valid."
    return "Check the Stderr tab and the server's settings, then start it again."


class InstancePage(QWidget):
    """Controls and inspects one instance through an `InstanceSession`.

    The async methods (`start_instance`, `stop_instance`, `call_selected_tool`) run on the qasync
    loop; the buttons schedule them as tasks.
    """

    sig_started = Signal(str)
    """Emitted with the instance id once the handshake is shown and the tool list is cached."""
    sig_stopped = Signal(str)
    """Emitted with the instance id after the session closed."""
    sig_failed = Signal(str)
    """Emitted with the error text shown on the page (start or call failures)."""
    sig_tool_result_shown = Signal(str)
    """Emitted with the tool name after a call's raw result is shown."""
    sig_stderr_line_shown = Signal(str)
    """Emitted with each stderr line of a running server after it is added to the Stderr tab."""

    def __init__(self, store: Store, instance_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._session = InstanceSession(store, instance_id)
        self.instance = self._session.instance
        self._tasks: set[asyncio.Task[Any]] = set()
        self._remove_listener: Any = None
        self.state = "stopped"
        self._build()
        self._show_state("stopped")

    # -- construction --------------------------------------------------------------------------------

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        header = QHBoxLayout()
        self.title_label = QLabel(f"<b>{self.instance.name}</b> [{self.instance.transport}]", self)
        self.title_label.setTextFormat(Qt.TextFormat.RichText)
        self.status_label = QLabel(self)
        self.profile_combo = QComboBox(self)
        self.profile_combo.addItems(sorted(self.instance.profiles))
        if self.instance.default_profile:
            self.profile_combo.setCurrentText(self.instance.default_profile)
        self.start_button = QPushButton("Start", self)
        self.stop_button = QPushButton("Stop", self)
        self.start_button.clicked.connect(self._on_start_button_clicked)
        self.stop_button.clicked.connect(self._on_stop_button_clicked)
        header.addWidget(self.title_label)
        header.addWidget(self.status_label)
        header.addStretch(1)
        header.addWidget(QLabel("Profile:", self))
        header.addWidget(self.profile_combo)
        header.addWidget(self.start_button)
        header.addWidget(self.stop_button)
        layout.addLayout(header)

        self.error_label = QLabel(self)
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.setStyleSheet("color: #b00020;")
        self.error_label.hide()
        layout.addWidget(self.error_label)

        self.tabs = QTabWidget(self)
        self.tabs.addTab(self._build_overview(), "Overview")
        self.tabs.addTab(self._build_tools(), "Tools")
        self.resources_text = _monospace(QPlainTextEdit(self))
        self.prompts_text = _monospace(QPlainTextEdit(self))
        self.stderr_text = _monospace(QPlainTextEdit(self))
        self.stderr_text.setMaximumBlockCount(MAX_STDERR_BLOCKS)
        self.tabs.addTab(self.resources_text, "Resources")
        self.tabs.addTab(self.prompts_text, "Prompts")
        self.tabs.addTab(self.stderr_text, "Stderr")
        layout.addWidget(self.tabs, 1)

    def _build_overview(self) -> QWidget:
        page = QWidget(self)
        form = QFormLayout(page)
        self.server_name_label = QLabel("-", page)
        self.server_version_label = QLabel("-", page)
        self.protocol_label = QLabel("-", page)
        self.capabilities_label = QLabel("-", page)
        self.capabilities_label.setWordWrap(True)
        self.launch_label = QLabel(self.instance.server_url, page)
        self.launch_label.setWordWrap(True)
        form.addRow("Server", self.server_name_label)
        form.addRow("Version", self.server_version_label)
        form.addRow("Protocol", self.protocol_label)
        form.addRow("Capabilities", self.capabilities_label)
        form.addRow("Launch", self.launch_label)
        return page

    def _build_tools(self) -> QWidget:
        splitter = QSplitter(self)
        self.tool_list = QListWidget(splitter)
        self.tool_list.currentItemChanged.connect(self._on_tool_list_current_changed)
        detail = QWidget(splitter)
        column = QVBoxLayout(detail)
        self.tool_description = QLabel(detail)
        self.tool_description.setWordWrap(True)
        self.input_schema_text = _monospace(QPlainTextEdit(detail))
        self.output_schema_text = _monospace(QPlainTextEdit(detail))
        self.form = SchemaForm(detail)
        self.call_button = QPushButton("Call tool", detail)
        self.call_button.clicked.connect(self._on_call_button_clicked)
        self.result_text = _monospace(QPlainTextEdit(detail))
        column.addWidget(self.tool_description)
        column.addWidget(QLabel("Input schema", detail))
        column.addWidget(self.input_schema_text)
        column.addWidget(QLabel("Output schema", detail))
        column.addWidget(self.output_schema_text)
        column.addWidget(QLabel("Try this tool", detail))
        column.addWidget(self.form)
        column.addWidget(self.call_button)
        column.addWidget(QLabel("Raw result", detail))
        column.addWidget(self.result_text)
        splitter.setStretchFactor(1, 3)
        return splitter

    # -- actions ---------------------------------------------------------------------------------------

    async def start_instance(self) -> bool:
        """Start the instance with the chosen profile and fill the page; return whether it started."""
        self._show_state("starting")
        self.error_label.hide()
        self.stderr_text.clear()
        profile = self.profile_combo.currentText() or None
        self._session = InstanceSession(self._store, self.instance.id, profile=profile)
        try:
            handshake = await self._session.start()
            self._remove_listener = self._session.add_stderr_listener(self._append_stderr)
            resources = await self._session.list_resources()
            prompts = await self._session.list_prompts()
        except Exception as error:  # every failure to start must reach the user, whatever its type
            await self._show_start_failure(error)
            return False
        self.refresh_stderr()
        self._show_handshake(handshake)
        self._show_tools(self._session.tools)
        self._show_listing(self.resources_text, resources)
        self._show_listing(self.prompts_text, prompts)
        self._show_state("running")
        self.sig_started.emit(self.instance.id)
        return True

    async def stop_instance(self) -> None:
        """Stop the server; the page keeps showing what it last saw."""
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        await self._session.stop()
        self.refresh_stderr()
        self._show_state("stopped")
        self.sig_stopped.emit(self.instance.id)

    async def call_selected_tool(self) -> bool:
        """Call the selected tool with the form's arguments and show the raw result; return success."""
        item = self.tool_list.currentItem()
        if item is None:
            self._show_error("Select a tool first.", "Pick a tool in the list on the left.")
            return False
        tool = str(item.text())
        try:
            arguments = self.form.values()
        except FormError as error:
            self._show_error(str(error), "Correct the field and call again.")
            return False
        self.call_button.setEnabled(False)
        try:
            result = await self._session.call_tool(tool, arguments)
        except (McpError, RuntimeError) as error:
            self.result_text.setPlainText(str(error))
            self._show_error(str(error), error_hint(error, self.instance.transport))
            return False
        finally:
            self.call_button.setEnabled(self.state == "running")
        self.error_label.hide()
        raw_result = {"is_error": result.is_error, "value": result.value, "content": result.content}
        self.result_text.setPlainText(_json_text(raw_result))
        self.sig_tool_result_shown.emit(tool)
        return not result.is_error

    def refresh_stderr(self) -> None:
        """Replace the Stderr tab with the last lines the server wrote."""
        self.stderr_text.setPlainText(self._session.stderr_tail(MAX_STDERR_BLOCKS))

    # -- display ---------------------------------------------------------------------------------------

    def _append_stderr(self, line: str) -> None:
        self.stderr_text.appendPlainText(line)
        self.sig_stderr_line_shown.emit(line)

    async def _show_start_failure(self, error: Exception) -> None:
        message = str(error)
        if isinstance(error, McpConnectError) and self.instance.transport != "stdio" and self.instance.url:
            message = await self._probe_reason(message)
        logger.warning("starting MCP instance %s failed: %s", self.instance.id, type(error).__name__)
        await self._session.stop()
        self.refresh_stderr()
        self._show_error(message, error_hint(error, self.instance.transport))
        self._show_state("failed")

    async def _probe_reason(self, message: str) -> str:
        """Ask the URL directly what it serves, which names an HTML page or a 401 more plainly."""
        try:
            await detect_remote_transport(str(self.instance.url), timeout_s=5.0)
        except McpProbeError as probe_error:
            return f"{message}\n{probe_error}"
        return message

    def _show_error(self, message: str, hint: str) -> None:
        self.error_label.setText(f"{message}\n{hint}")
        self.error_label.show()
        self.sig_failed.emit(message)

    def _show_state(self, state: str) -> None:
        self.state = state
        self.status_label.setText(
            {"stopped": "Stopped", "starting": "Starting…", "running": "Running", "failed": "Failed"}[state]
        )
        self.start_button.setEnabled(state in ("stopped", "failed"))
        self.stop_button.setEnabled(state == "running")
        self.call_button.setEnabled(state == "running")
        self.profile_combo.setEnabled(state in ("stopped", "failed"))

    def _show_handshake(self, handshake: Handshake) -> None:
        self.server_name_label.setText(handshake.server_name or "(no name given)")
        self.server_version_label.setText(handshake.server_version or "(no version given)")
        self.protocol_label.setText(handshake.protocol_version)
        self.capabilities_label.setText(", ".join(sorted(handshake.capabilities)) or "none")

    def _show_tools(self, tools: list[ToolInfo]) -> None:
        self.tool_list.clear()
        for tool in tools:
            item = QListWidgetItem(tool.name, self.tool_list)
            item.setToolTip(tool.description)
            item.setData(Qt.ItemDataRole.UserRole, tool)
        if tools:
            self.tool_list.setCurrentRow(0)

    def _show_listing(self, edit: QPlainTextEdit, listing: Listing) -> None:
        edit.setPlainText(listing.note or (_json_text(listing.items) if listing.items else "(none)"))

    def select_tool(self, name: str) -> None:
        """Select a tool in the list by name, which shows its schemas and form."""
        matches = self.tool_list.findItems(name, Qt.MatchFlag.MatchExactly)
        if not matches:
            raise KeyError(f"tool {name!r} is not listed")
        self.tool_list.setCurrentItem(matches[0])

    # -- slots -----------------------------------------------------------------------------------------

    def _on_tool_list_current_changed(self, current: QListWidgetItem | None, _previous: object) -> None:
        if current is None:
            return
        tool: ToolInfo = current.data(Qt.ItemDataRole.UserRole)
        self.tool_description.setText(tool.description or "(no description)")
        self.input_schema_text.setPlainText(_json_text(tool.input_schema))
        self.output_schema_text.setPlainText(_json_text(tool.output_schema) if tool.output_schema else "(none)")
        self.form.set_schema(tool.input_schema)
        self.result_text.clear()

    def _on_start_button_clicked(self) -> None:
        self._spawn(self.start_instance())

    def _on_stop_button_clicked(self) -> None:
        self._spawn(self.stop_instance())

    def _on_call_button_clicked(self) -> None:
        self._spawn(self.call_selected_tool())

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
