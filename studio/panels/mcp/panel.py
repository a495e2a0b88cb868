"""The MCP servers dock: the catalog and the project's instances, import/export, and one page per instance."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.mcp.catalog import list_entries
from studio.mcp.errors import McpConfigError, McpNotFoundError
from studio.mcp.instances import McpInstance, create_instance, delete_instance, find_instance_uses, list_instances
from studio.mcp.mcp_servers_json import ExportResult, ImportReport, export_servers, import_servers, parse_servers
from studio.mcp.tool_cache import ToolEntry, tool_entries
from studio.panels.mcp.instance_page import InstancePage
from studio.secrets import SecretsError, SecretVault, open_vault
from studio.store import Store

logger = logging.getLogger(__name__)

ENTRY_ROLE = Qt.ItemDataRole.UserRole
KIND_ROLE = Qt.ItemDataRole.UserRole + 1


class McpPanel(QWidget):
    """Lists catalog entries and instances; selecting an instance shows its page, which keeps its session."""

    sig_instances_changed = Signal()
    """Emitted after instances were added, imported or removed. No arguments."""
    sig_tools_changed = Signal()
    """Emitted after an instance started and its tool list was cached (see `tool_entries`). No arguments."""
    sig_error_shown = Signal(str)
    """Emitted with the message each time the panel shows an error."""

    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self.pages: dict[str, InstancePage] = {}
        self.dock: QDockWidget | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._build()
        self.reload()

    def _build(self) -> None:
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        left = QWidget(splitter)
        column = QVBoxLayout(left)
        self.tree = QTreeWidget(left)
        self.tree.setHeaderLabels(["Name", "Transport"])
        self.tree.currentItemChanged.connect(self._on_tree_current_changed)
        column.addWidget(self.tree)

        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add instance", left)
        self.import_button = QPushButton("Import…", left)
        self.export_button = QPushButton("Export…", left)
        self.remove_button = QPushButton("Remove", left)
        self.add_button.clicked.connect(self._on_add_button_clicked)
        self.import_button.clicked.connect(self._on_import_button_clicked)
        self.export_button.clicked.connect(self._on_export_button_clicked)
        self.remove_button.clicked.connect(self._on_remove_button_clicked)
        for button in (self.add_button, self.import_button, self.export_button, self.remove_button):
            buttons.addWidget(button)
        column.addLayout(buttons)

        self.message_label = QLabel(left)
        self.message_label.setWordWrap(True)
        self.message_label.setTextFormat(Qt.TextFormat.PlainText)
        column.addWidget(self.message_label)

        self.stack = QStackedWidget(splitter)
        self.placeholder = QLabel("Select an instance to start it and try its tools.", self.stack)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stack.addWidget(self.placeholder)
        splitter.setStretchFactor(1, 3)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    # -- listing ---------------------------------------------------------------------------------------

    def reload(self) -> None:
        """Rebuild the tree from the store."""
        self.tree.clear()
        catalog = self._catalog_group = QTreeWidgetItem(self.tree, ["Catalog"])
        for entry in list_entries(self._store):
            item = QTreeWidgetItem(catalog, [entry.name, entry.transport])
            item.setToolTip(0, entry.description or entry.launch_label)
            item.setData(0, ENTRY_ROLE, entry.id)
            item.setData(0, KIND_ROLE, "entry")
        instances = self._instances_group = QTreeWidgetItem(self.tree, ["Instances"])
        for instance in list_instances(self._store):
            item = QTreeWidgetItem(instances, [instance.name, instance.transport])
            item.setToolTip(0, instance.server_url)
            item.setData(0, ENTRY_ROLE, instance.id)
            item.setData(0, KIND_ROLE, "instance")
        self.tree.expandAll()

    def instance_names(self) -> list[str]:
        """Return the instance names the tree shows, in order."""
        return _child_names(self._instances_group)

    def entry_names(self) -> list[str]:
        """Return the catalog entry names the tree shows, in order."""
        return _child_names(self._catalog_group)

    def tool_entries(self) -> list[ToolEntry]:
        """Return the cached tools of the project's instances, for the canvas quick-add and the validator."""
        return tool_entries(self._store)

    # -- actions ---------------------------------------------------------------------------------------

    def add_instance(self, entry_id: str, name: str) -> McpInstance | None:
        """Create an instance of a catalog entry and select it; None (with the error shown) on invalid input."""
        try:
            instance = create_instance(self._store, entry_id, name=name)
        except (McpConfigError, McpNotFoundError) as error:
            self._show_message(str(error), error=True)
            return None
        self.reload()
        self.show_instance(instance.id)
        self._show_message(f"Added instance {instance.name}.")
        self.sig_instances_changed.emit()
        return instance

    def import_file(self, path: Path, vault: SecretVault | None = None) -> ImportReport | None:
        """Import an mcpServers JSON file; secrets go to `vault`, else to the workspace's vault."""
        try:
            document = json.loads(path.read_text(encoding="utf-8-sig"))
            if not isinstance(document, dict):
                raise McpConfigError(f"{path} must contain a JSON object with 'mcpServers' or 'servers'")
            servers = parse_servers(document)
            has_secret = any(
                value is not None for s in servers for value in [*s.secret_env.values(), *s.secret_headers.values()]
            )
            if has_secret and vault is None:
                vault = open_vault(self._store.workspace_slug())
            report = import_servers(self._store, document, vault=vault)
        except (OSError, json.JSONDecodeError, McpConfigError, SecretsError) as error:
            self._show_message(f"Import of {path.name} failed: {error}", error=True)
            return None
        self.reload()
        lines = [f"Imported {len(report.instances)} servers from {path.name}."]
        lines += [f"Needs a connection: {entry}" for entry in report.unbound]
        lines += [f"Skipped {entry}" for entry in report.skipped]
        self._show_message("\n".join(lines))
        self.sig_instances_changed.emit()
        return report

    def export_file(self, path: Path, file_format: str) -> ExportResult | None:
        """Write the instances as an mcpServers JSON file of a client; secrets are never written."""
        try:
            result = export_servers(self._store, file_format)
            path.write_text(json.dumps(result.document, indent=2) + "\n", encoding="utf-8")
        except (OSError, McpConfigError) as error:
            self._show_message(f"Export failed: {error}", error=True)
            return None
        self._show_message("\n".join([f"Wrote {path.name}.", *result.notes]))
        return result

    def show_instance(self, instance_id: str) -> InstancePage:
        """Show the page of an instance, creating it on first use."""
        page = self.pages.get(instance_id)
        if page is None:
            page = InstancePage(self._store, instance_id, self.stack)
            page.sig_started.connect(self._on_page_started)
            self.pages[instance_id] = page
            self.stack.addWidget(page)
        self.stack.setCurrentWidget(page)
        return page

    async def remove_instance(self, instance_id: str) -> None:
        """Stop the instance's server if it runs, then delete the instance.

        An instance that workflow steps use is kept, and the message names those workflows.
        """
        uses = find_instance_uses(self._store, instance_id)
        if uses:
            self._show_message(
                f"Not removed: the instance is used by {'; '.join(uses)}. Point those steps at another instance first.",
                error=True,
            )
            return
        page = self.pages.pop(instance_id, None)
        if page is not None:
            await page.stop_instance()
            self.stack.removeWidget(page)
            page.deleteLater()
        delete_instance(self._store, instance_id)
        self.reload()
        self.sig_instances_changed.emit()

    async def stop_all(self) -> None:
        """Stop every running instance; call it before the window closes."""
        await asyncio.gather(*(page.stop_instance() for page in self.pages.values() if page.state == "running"))

    def stop_all_soon(self) -> None:
        """Schedule `stop_all` on the running loop, as a window-close handler must not block."""
        if any(page.state == "running" for page in self.pages.values()):
            self._spawn(self.stop_all())

    def request_import(self) -> None:
        """Ask for an mcpServers file and import it."""
        path, _ = QFileDialog.getOpenFileName(self, "Import mcpServers file", "", "JSON files (*.json)")
        if path:
            self.import_file(Path(path))

    def request_export(self) -> None:
        """Ask for a client format and a file name, then export."""
        file_format, accepted = QInputDialog.getItem(
            self, "Export mcpServers file", "Client format:", ["cursor", "vscode", "claude"], 0, False
        )
        if not accepted:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export mcpServers file", "mcp.json", "JSON files (*.json)")
        if path:
            self.export_file(Path(path), file_format)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_task_error)

    def _show_message(self, text: str, *, error: bool = False) -> None:
        self.message_label.setStyleSheet("color: #b00020;" if error else "")
        self.message_label.setText(text)
        if error:
            logger.warning("MCP panel: %s", text)
            self.sig_error_shown.emit(text)

    # -- slots -----------------------------------------------------------------------------------------

    def _on_page_started(self, _instance_id: str) -> None:
        self.sig_tools_changed.emit()

    def _on_tree_current_changed(self, current: QTreeWidgetItem | None, _previous: object) -> None:
        if current is not None and current.data(0, KIND_ROLE) == "instance":
            self.show_instance(str(current.data(0, ENTRY_ROLE)))

    def _on_add_button_clicked(self) -> None:
        current = self.tree.currentItem()
        if current is None or current.data(0, KIND_ROLE) != "entry":
            self._show_message("Select a catalog entry first, then add an instance of it.", error=True)
            return
        name, accepted = QInputDialog.getText(self, "Add MCP instance", "Instance name:", text=current.text(0))
        if accepted:
            self.add_instance(str(current.data(0, ENTRY_ROLE)), name)

    def _on_import_button_clicked(self) -> None:
        self.request_import()

    def _on_export_button_clicked(self) -> None:
        self.request_export()

    def _on_remove_button_clicked(self) -> None:
        current = self.tree.currentItem()
        if current is None or current.data(0, KIND_ROLE) != "instance":
            self._show_message("Select an instance to remove.", error=True)
            return
        self._spawn(self.remove_instance(str(current.data(0, ENTRY_ROLE))))


def _child_names(group: QTreeWidgetItem) -> list[str]:
    names: list[str] = []
    for index in range(group.childCount()):
        child = group.child(index)
        if child is not None:
            names.append(child.text(0))
    return names


def _log_task_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("MCP panel task failed", exc_info=task.exception())
