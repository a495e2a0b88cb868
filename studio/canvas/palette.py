"""The step palette dock: step types to drag onto the canvas or add with a double-click."""

from __future__ import annotations

import logging

from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QDrag, QIcon, QKeyEvent
from PySide6.QtWidgets import QDockWidget, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from studio.canvas.icons import step_icon
from studio.canvas.view import STEP_TYPE_MIME
from studio.model.workflow import STEP_TYPES

logger = logging.getLogger(__name__)

STEP_TYPE_TITLES: dict[str, str] = {
    "mcp_call": "MCP tool call",
    "llm_call": "LLM call",
    "human_task": "Human task",
    "lua_script": "Lua script",
    "for_each": "For each",
}
STEP_TYPE_DESCRIPTIONS: dict[str, str] = {
    "mcp_call": "Call one tool on an MCP server",
    "llm_call": "Send a prompt to a chat model",
    "human_task": "Wait for a person to approve or fill in a form",
    "lua_script": "Run a sandboxed Lua script",
    "for_each": "Run a body of steps once per list item",
}


class _StepTypeList(QListWidget):
    """A list whose drags carry the step type under :data:`STEP_TYPE_MIME`."""

    def mimeData(self, items: list[QListWidgetItem]) -> QMimeData:  # type: ignore[override]
        mime = QMimeData()
        if items:
            mime.setData(STEP_TYPE_MIME, str(items[0].data(Qt.ItemDataRole.UserRole)).encode("utf-8"))
        return mime

    def mimeTypes(self) -> list[str]:
        return [STEP_TYPE_MIME]

    def keyPressEvent(self, event: QKeyEvent) -> None:
        item = self.currentItem()
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and item is not None:
            self.itemDoubleClicked.emit(item)
            event.accept()
            return
        super().keyPressEvent(event)

    def startDrag(self, supportedActions: Qt.DropAction) -> None:
        item = self.currentItem()
        if item is None:
            return
        drag = QDrag(self)
        drag.setMimeData(self.mimeData([item]))
        drag.setPixmap(item.icon().pixmap(QSize(32, 32)))
        drag.exec(Qt.DropAction.CopyAction)


class StepPalette(QDockWidget):
    """Lists :data:`STEP_TYPES` with icon, name and description, filtered by a search field."""

    sig_step_type_activated = Signal(str)
    """Emitted with a step type when its entry is double-clicked or Enter is pressed on it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Steps", parent)
        self.setObjectName("step-palette")
        content = QWidget(self)
        self.filter_edit = QLineEdit(content)
        self.filter_edit.setPlaceholderText("Filter step types")
        self.filter_edit.setClearButtonEnabled(True)
        self.list = _StepTypeList(content)
        self.list.setDragEnabled(True)
        self.list.setDragDropMode(QListWidget.DragDropMode.DragOnly)
        self.list.setIconSize(QSize(28, 28))
        self.list.setSpacing(2)
        for step_type in STEP_TYPES:
            item = QListWidgetItem(QIcon(step_icon(step_type)), STEP_TYPE_TITLES.get(step_type, step_type))
            item.setData(Qt.ItemDataRole.UserRole, step_type)
            item.setToolTip(f"{STEP_TYPE_DESCRIPTIONS.get(step_type, '')}\nDrag onto the canvas or double-click")
            self.list.addItem(item)
        layout = QVBoxLayout(content)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.list)
        self.setWidget(content)
        self.filter_edit.textChanged.connect(self._on_filter_changed)
        self.list.itemDoubleClicked.connect(self._on_item_activated)

    def item_for(self, step_type: str) -> QListWidgetItem | None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == step_type:
                return item
        return None

    def _on_filter_changed(self, text: str) -> None:
        needle = text.strip().lower()
        for row in range(self.list.count()):
            item = self.list.item(row)
            haystack = f"{item.text()} {item.data(Qt.ItemDataRole.UserRole)} {item.toolTip()}".lower()
            item.setHidden(bool(needle) and needle not in haystack)

    def _on_item_activated(self, item: QListWidgetItem) -> None:
        self.sig_step_type_activated.emit(str(item.data(Qt.ItemDataRole.UserRole)))
