"""A searchable JSON tree view with copy-value and copy-path actions."""

from __future__ import annotations

import json
import logging
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLineEdit,
    QMenu,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from studio.panels.step_details.model import value_path

logger = logging.getLogger(__name__)

PATH_ROLE = Qt.ItemDataRole.UserRole + 1
MAX_CHILDREN = 2000
"""Children shown per object or list; the rest are summarised in one row so huge outputs stay fast."""
VALUE_CHARS = 500
"""Characters of a string value shown in its cell; copying gives the whole value."""

Index = QModelIndex | QPersistentModelIndex


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return f"array[{len(value)}]"
    if isinstance(value, dict):
        return f"object{{{len(value)}}}"
    return type(value).__name__


def _preview(value: Any) -> str:
    if isinstance(value, dict | list):
        return ""
    if isinstance(value, str):
        return value[:VALUE_CHARS]
    return json.dumps(value)


class JsonTreeView(QWidget):
    """Shows a JSON value as a tree of Key / Value / Type rows.

    The search field keeps rows whose key or value contains the text (and their parents) and
    expands them. Right-click or the buttons copy the selected value as JSON, or its template
    path from ``root`` (for example ``steps.fetch.result.items[0]``).
    """

    sig_text_copied = Signal(str)
    """Emitted with the text put on the clipboard."""

    def __init__(self, root: str = "value", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.root = root
        self.model = QStandardItemModel(0, 3, self)
        self.model.setHorizontalHeaderLabels(["Key", "Value", "Type"])
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setRecursiveFilteringEnabled(True)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.search_edit = QLineEdit(self)
        self.search_edit.setPlaceholderText("Search keys and values")
        self.search_edit.setClearButtonEnabled(True)
        self.search_edit.textChanged.connect(self._on_search_edit_changed)
        self.copy_value_button = QToolButton(self)
        self.copy_value_button.setText("Copy value")
        self.copy_value_button.clicked.connect(self.copy_value)
        self.copy_path_button = QToolButton(self)
        self.copy_path_button.setText("Copy path")
        self.copy_path_button.clicked.connect(self.copy_path)
        self.tree = QTreeView(self)
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._on_tree_context_menu_requested)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.search_edit, 1)
        bar.addWidget(self.copy_value_button)
        bar.addWidget(self.copy_path_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.tree)
        self._value: Any = None

    def set_value(self, value: Any, root: str | None = None) -> None:
        """Show ``value``; ``root`` is the template path of the value itself."""
        if root is not None:
            self.root = root
        self._value = value
        self.model.removeRows(0, self.model.rowCount())
        parent = self.model.invisibleRootItem()
        if isinstance(value, dict | list):
            self._add_children(parent, value, ())
        elif value is not None:
            parent.appendRow(self._row("(value)", value, ()))
        self.tree.expandToDepth(0)
        self.tree.resizeColumnToContents(0)

    def value(self) -> Any:
        return self._value

    def value_at(self, path: list[str | int]) -> Any:
        """Return the part of the shown value at ``path`` (keys and list indexes)."""
        value = self._value
        for part in path:
            value = value[part]
        return value

    def _add_children(self, parent: QStandardItem, value: dict[str, Any] | list[Any], path: tuple[str | int, ...]) -> None:
        pairs: list[tuple[str | int, Any]] = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        for key, child in pairs[:MAX_CHILDREN]:
            row = self._row(f"[{key}]" if isinstance(key, int) else key, child, (*path, key))
            parent.appendRow(row)
            if isinstance(child, dict | list):
                self._add_children(row[0], child, (*path, key))
        if len(pairs) > MAX_CHILDREN:
            more = QStandardItem(f"… {len(pairs) - MAX_CHILDREN} more not shown; copy the parent value to see them")
            parent.appendRow([more, QStandardItem(""), QStandardItem("")])

    def _row(self, label: str, value: Any, path: tuple[str | int, ...]) -> list[QStandardItem]:
        key_item = QStandardItem(label)
        key_item.setData(list(path), PATH_ROLE)
        value_item = QStandardItem(_preview(value))
        if isinstance(value, str) and len(value) > VALUE_CHARS:
            value_item.setToolTip(value[: VALUE_CHARS * 10])
        return [key_item, value_item, QStandardItem(_type_name(value))]

    def find_index(self, path: list[str | int]) -> QModelIndex:
        """Return the view index of the row at ``path`` (an invalid index when it is hidden or absent)."""
        parent = QModelIndex()
        found = QModelIndex()
        for depth in range(len(path)):
            found = QModelIndex()
            for row in range(self.proxy.rowCount(parent)):
                candidate = self.proxy.index(row, 0, parent)
                if candidate.data(PATH_ROLE) == path[: depth + 1]:
                    found = candidate
                    break
            if not found.isValid():
                return QModelIndex()
            parent = found
        return found

    def select_path(self, path: list[str | int]) -> bool:
        index = self.find_index(path)
        if index.isValid():
            self.tree.setCurrentIndex(index)
        return index.isValid()

    def _selected_key_index(self) -> QModelIndex | None:
        index = self.tree.currentIndex()
        if not index.isValid():
            return None
        return index.siblingAtColumn(0)

    def copy_value(self) -> str | None:
        """Copy the selected value (the whole value when nothing is selected) as JSON; return the text."""
        index = self._selected_key_index()
        value = self._value if index is None else self.value_at(index.data(PATH_ROLE) or [])
        text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
        return self._copy(text)

    def copy_path(self) -> str | None:
        """Copy the template path of the selected value; return the text."""
        index = self._selected_key_index()
        path = [] if index is None else index.data(PATH_ROLE)
        return self._copy(value_path(self.root, path or []))

    def _copy(self, text: str) -> str:
        QGuiApplication.clipboard().setText(text)
        self.sig_text_copied.emit(text)
        return text

    def _on_search_edit_changed(self, text: str) -> None:
        self.proxy.setFilterFixedString(text)
        if text:
            self.tree.expandAll()
        else:
            self.tree.expandToDepth(0)

    def _on_tree_context_menu_requested(self, position: QPoint) -> None:
        menu = QMenu(self)
        copy_value = QAction("Copy value", menu)
        copy_value.triggered.connect(self.copy_value)
        copy_path = QAction("Copy path", menu)
        copy_path.triggered.connect(self.copy_path)
        menu.addAction(copy_value)
        menu.addAction(copy_path)
        menu.popup(self.tree.viewport().mapToGlobal(position))
