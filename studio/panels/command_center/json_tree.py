"""A read-only tree view of a JSON value: one row per object key or list item."""

from __future__ import annotations

import json

from PySide6.QtWidgets import QAbstractItemView, QTreeWidget, QTreeWidgetItem, QWidget

from studio.model.workflow import JsonValue

MAX_ITEMS = 2000
"""Maximum number of tree rows; a larger value is cut off with a final row saying how much is hidden."""
SCALAR_CHARS = 500
"""Maximum characters of one scalar cell; the tooltip shows the whole value."""


class JsonTree(QTreeWidget):
    """Shows a JSON value as a two-column tree (key, value); containers show their size."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(2)
        self.setHeaderLabels(["Key", "Value"])
        self.setAlternatingRowColors(True)
        self.setUniformRowHeights(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self._count = 0

    def set_value(self, value: JsonValue) -> None:
        """Replace the tree with ``value``; the first two levels are expanded."""
        self.clear()
        self._count = 0
        if isinstance(value, dict):
            for key, item in value.items():
                self._add(None, str(key), item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._add(None, f"[{index}]", item)
        else:
            self._add(None, "value", value)
        self.expandToDepth(1)
        self.resizeColumnToContents(0)

    def row_count(self) -> int:
        """Return the number of rows added by the last :meth:`set_value`."""
        return self._count

    def _add(self, parent: QTreeWidgetItem | None, key: str, value: JsonValue) -> None:
        if self._count >= MAX_ITEMS:
            return
        self._count += 1
        item = QTreeWidgetItem([key, _summary(value)])
        item.setToolTip(1, _full_text(value))
        if parent is None:
            self.addTopLevelItem(item)
        else:
            parent.addChild(item)
        children: list[tuple[str, JsonValue]] = []
        if isinstance(value, dict):
            children = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list):
            children = [(f"[{i}]", v) for i, v in enumerate(value)]
        for position, (child_key, child) in enumerate(children):
            if self._count >= MAX_ITEMS:
                hidden = QTreeWidgetItem(["…", f"{len(children) - position} more not shown"])
                item.addChild(hidden)
                return
            self._add(item, child_key, child)


def _summary(value: JsonValue) -> str:
    if isinstance(value, dict):
        return f"{{{len(value)} keys}}" if len(value) != 1 else "{1 key}"
    if isinstance(value, list):
        return f"[{len(value)} items]" if len(value) != 1 else "[1 item]"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= SCALAR_CHARS else text[:SCALAR_CHARS] + "…"


def _full_text(value: JsonValue) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    return text[: SCALAR_CHARS * 10]
