"""The quick-add popup: search step types and the tools of the configured MCP instances, pick one to add."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QEvent, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QGuiApplication, QIcon, QKeyEvent
from PySide6.QtWidgets import QFrame, QLabel, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from studio.canvas.icons import step_icon
from studio.canvas.palette import STEP_TYPE_DESCRIPTIONS, STEP_TYPE_TITLES
from studio.model.workflow import STEP_TYPES, JsonValue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolEntry:
    """One tool of a configured MCP instance, as the quick-add popup lists it."""

    instance_id: str
    instance_name: str
    server_url: str
    tool_name: str
    description: str = ""
    input_schema: dict[str, JsonValue] = field(default_factory=dict)


ToolSource = Callable[[], list[ToolEntry]]
"""Returns the tools to offer. Called each time the popup opens, so it may read live state."""


def no_tools() -> list[ToolEntry]:
    """Return no tools: the default tool source until MCP instances are wired in."""
    return []


@dataclass(frozen=True)
class QuickAddEntry:
    """A choice in the popup: a step type, or an ``mcp_call`` preconfigured with ``tool``."""

    step_type: str
    title: str
    description: str = ""
    tool: ToolEntry | None = None

    def search_text(self) -> str:
        parts = [self.step_type, self.title, self.description]
        if self.tool is not None:
            parts += [self.tool.instance_name, self.tool.server_url, self.tool.tool_name]
        return " ".join(parts).lower()


def build_entries(tools: list[ToolEntry]) -> list[QuickAddEntry]:
    """Return the step type entries followed by one ``mcp_call`` entry per tool."""
    entries = [
        QuickAddEntry(step_type, STEP_TYPE_TITLES.get(step_type, step_type), STEP_TYPE_DESCRIPTIONS.get(step_type, ""))
        for step_type in STEP_TYPES
    ]
    for tool in tools:
        title = f"{tool.tool_name} — {tool.instance_name}"
        entries.append(QuickAddEntry("mcp_call", title, tool.description, tool))
    return entries


def matches(entry: QuickAddEntry, query: str) -> bool:
    """Return True when every whitespace-separated word of ``query`` occurs in the entry's text."""
    text = entry.search_text()
    return all(word in text for word in query.lower().split())


class QuickAddPopup(QFrame):
    """A popup with a search field over a list of :class:`QuickAddEntry`.

    Typing filters the list, Up and Down move the current row, Enter or a double-click picks it
    and Escape closes the popup without a choice.
    """

    sig_entry_chosen = Signal(object)
    """Emitted with the chosen :class:`QuickAddEntry` just before the popup closes."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("quick-add")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search steps and tools")
        self.list = QListWidget(self)
        self.hint = QLabel("Enter adds the step, Escape closes", self)
        self.hint.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.search)
        layout.addWidget(self.list)
        layout.addWidget(self.hint)
        self.resize(380, 320)
        self._entries: list[QuickAddEntry] = []
        self.search.textChanged.connect(self._refilter)
        self.search.installEventFilter(self)
        self.list.itemDoubleClicked.connect(self._choose_item)

    def open_at(self, global_pos: QPoint, entries: list[QuickAddEntry]) -> None:
        """Show ``entries`` with an empty search at ``global_pos`` (screen pixels) and focus the search."""
        self._entries = entries
        self.search.clear()
        self._refilter("")
        self.move(self._on_screen(global_pos))
        self.show()
        self.search.setFocus()

    def _on_screen(self, global_pos: QPoint) -> QPoint:
        """Return ``global_pos`` moved so the whole popup stays on the screen that contains it."""
        screen = QGuiApplication.screenAt(global_pos) or QGuiApplication.primaryScreen()
        if screen is None:
            return global_pos
        area = screen.availableGeometry()
        x = min(max(global_pos.x(), area.left()), area.right() - self.width())
        y = min(max(global_pos.y(), area.top()), area.bottom() - self.height())
        return QPoint(x, y)

    def visible_entries(self) -> list[QuickAddEntry]:
        result = []
        for row in range(self.list.count()):
            item = self.list.item(row)
            result.append(item.data(Qt.ItemDataRole.UserRole))
        return result

    def _refilter(self, query: str) -> None:
        self.list.clear()
        for entry in self._entries:
            if not matches(entry, query):
                continue
            item = QListWidgetItem(QIcon(step_icon(entry.step_type)), entry.title)
            item.setData(Qt.ItemDataRole.UserRole, entry)
            item.setToolTip(entry.description)
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.search and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            return self._on_search_key(event)
        return False

    def _on_search_key(self, event: QKeyEvent) -> bool:
        key = event.key()
        if key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
            step = 1 if key == Qt.Key.Key_Down else -1
            row = min(max(self.list.currentRow() + step, 0), self.list.count() - 1)
            self.list.setCurrentRow(row)
            return True
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            item = self.list.currentItem()
            if item is not None:
                self._choose_item(item)
            return True
        if key == Qt.Key.Key_Escape:
            self.close()
            return True
        return False

    def _choose_item(self, item: QListWidgetItem) -> None:
        entry = item.data(Qt.ItemDataRole.UserRole)
        self.close()
        self.sig_entry_chosen.emit(entry)
