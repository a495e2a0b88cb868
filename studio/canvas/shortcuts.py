"""The canvas editor's action table (one source for menus, shortcuts and help) and the shortcut help overlay."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent, QKeySequence, QMouseEvent
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionSpec:
    """One editor command: its menu, text, shortcuts and the :class:`CanvasEditing` method it calls.

    ``shortcuts`` are portable :class:`QKeySequence` strings; the first one is shown in menus.
    ``checkable`` actions call the method with the new checked state.
    """

    name: str
    text: str
    menu: str
    method: str
    shortcuts: tuple[str, ...] = ()
    help: str = ""
    checkable: bool = False


EDIT, ARRANGE, VIEW = "Edit", "Arrange", "View"

ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("quick_add", "Add step…", EDIT, "open_quick_add_at_cursor", ("Tab",),
               "Search step types and MCP tools and add one at the mouse position"),
    ActionSpec("add_note", "Add sticky note", EDIT, "add_note_at_cursor", ("Shift+N",), "Add a sticky note"),
    ActionSpec("delete", "Delete", EDIT, "delete_selection", ("Delete", "Backspace"),
               "Delete the selected steps, edges and notes"),
    ActionSpec("duplicate", "Duplicate", EDIT, "duplicate_selection", ("Ctrl+D",), "Duplicate the selected steps"),
    ActionSpec("copy", "Copy", EDIT, "copy_selection", ("Ctrl+C",), "Copy the selected steps and notes as JSON"),
    ActionSpec("cut", "Cut", EDIT, "cut_selection", ("Ctrl+X",), "Copy, then delete the selection"),
    ActionSpec("paste", "Paste", EDIT, "paste_clipboard", ("Ctrl+V",), "Paste steps at the mouse position"),
    ActionSpec("select_all", "Select all", EDIT, "select_all", ("Ctrl+A",), "Select every step"),
    ActionSpec("group", "Group", EDIT, "group_selection", ("Ctrl+G",), "Frame the selected steps as a group"),
    ActionSpec("ungroup", "Ungroup", EDIT, "ungroup_selection", ("Ctrl+Shift+G",),
               "Remove the groups of the selected steps"),
    ActionSpec("align_left", "Align left", ARRANGE, "align_left", ("Ctrl+Alt+Left",), "Line up left edges"),
    ActionSpec("align_right", "Align right", ARRANGE, "align_right", ("Ctrl+Alt+Right",), "Line up right edges"),
    ActionSpec("align_top", "Align top", ARRANGE, "align_top", ("Ctrl+Alt+Up",), "Line up top edges"),
    ActionSpec("align_bottom", "Align bottom", ARRANGE, "align_bottom", ("Ctrl+Alt+Down",), "Line up bottom edges"),
    ActionSpec("align_center_horizontal", "Align centers horizontally", ARRANGE, "align_center_horizontal",
               ("Ctrl+Alt+H",), "Line up centres on one vertical line"),
    ActionSpec("align_center_vertical", "Align centers vertically", ARRANGE, "align_center_vertical",
               ("Ctrl+Alt+V",), "Line up centres on one horizontal line"),
    ActionSpec("distribute_horizontal", "Distribute horizontally", ARRANGE, "distribute_horizontal",
               ("Alt+Shift+H",), "Equal horizontal gaps between three or more steps"),
    ActionSpec("distribute_vertical", "Distribute vertically", ARRANGE, "distribute_vertical",
               ("Alt+Shift+V",), "Equal vertical gaps between three or more steps"),
    ActionSpec("auto_layout", "Auto-layout", ARRANGE, "auto_layout", ("Ctrl+Shift+L",),
               "Lay out the selection (or the whole graph) left to right; pinned steps stay"),
    ActionSpec("pin_layout", "Pin position for auto-layout", ARRANGE, "pin_selection", ("Shift+P",),
               "Auto-layout keeps the selected steps where they are"),
    ActionSpec("unpin_layout", "Unpin position", ARRANGE, "unpin_selection", ("Alt+Shift+P",),
               "Auto-layout may move the selected steps again"),
    ActionSpec("snap", "Snap to grid", ARRANGE, "set_snap_enabled", ("Alt+G",),
               "Snap moved steps and notes to the grid", checkable=True),
    ActionSpec("nudge_left", "Nudge left", ARRANGE, "nudge_left", ("Left",), "Move the selection one grid step"),
    ActionSpec("nudge_right", "Nudge right", ARRANGE, "nudge_right", ("Right",), "Move the selection one grid step"),
    ActionSpec("nudge_up", "Nudge up", ARRANGE, "nudge_up", ("Up",), "Move the selection one grid step"),
    ActionSpec("nudge_down", "Nudge down", ARRANGE, "nudge_down", ("Down",), "Move the selection one grid step"),
    ActionSpec("zoom_in", "Zoom in", VIEW, "zoom_in", ("Ctrl+=", "Ctrl++"), "Zoom in around the centre"),
    ActionSpec("zoom_out", "Zoom out", VIEW, "zoom_out", ("Ctrl+-",), "Zoom out around the centre"),
    ActionSpec("zoom_reset", "Actual size", VIEW, "zoom_reset", ("Ctrl+0",), "Zoom to 100 %"),
    ActionSpec("zoom_fit", "Zoom to fit", VIEW, "zoom_to_fit", ("F",), "Show the whole workflow"),
    ActionSpec("zoom_selection", "Zoom to selection", VIEW, "zoom_to_selection", ("Shift+F",),
               "Show the selected steps"),
    ActionSpec("minimap", "Minimap", VIEW, "set_minimap_visible", ("M",), "Show or hide the minimap",
               checkable=True),
    ActionSpec("shortcut_help", "Keyboard shortcuts", VIEW, "toggle_shortcut_help", ("F1", "?"),
               "Show or hide this list"),
)
"""Every canvas editing command. Menus, shortcuts and the help overlay are all built from this table."""

MOUSE_GESTURES: tuple[tuple[str, str], ...] = (
    ("Drag from a port to a node", "Connect two steps"),
    ("Drop a connection on empty canvas", "Add a step that is connected to it"),
    ("Drop a step onto an edge", "Insert the step into the edge"),
    ("Click, Ctrl+click, Shift+click", "Select, toggle, add to the selection"),
    ("Drag on empty canvas", "Select with a rectangle"),
    ("Drag a step or note", "Move the selection"),
    ("Middle-drag, or Space+drag", "Pan"),
    ("Wheel", "Zoom around the mouse"),
    ("Double-click empty canvas", "Add a step"),
    ("Double-click a note", "Edit its text"),
    ("Double-click a group title", "Rename the group"),
    ("Drag a palette entry onto the canvas", "Add a step there"),
)
"""Mouse gestures shown in the help overlay beside :data:`ACTIONS`."""


def shortcut_text(spec: ActionSpec) -> str:
    """Return the shortcuts of ``spec`` in the platform's native notation, joined by commas."""
    return ", ".join(
        QKeySequence(shortcut).toString(QKeySequence.SequenceFormat.NativeText) for shortcut in spec.shortcuts
    )


def help_html(actions: tuple[ActionSpec, ...] = ACTIONS) -> str:
    """Return the shortcut list as an HTML table, grouped by menu, followed by the mouse gestures."""
    parts = ["<h3>Canvas shortcuts</h3><table cellspacing='0' cellpadding='3'>"]
    current_menu = ""
    for spec in actions:
        if spec.menu != current_menu:
            current_menu = spec.menu
            parts.append(f"<tr><td colspan='2'><b>{html.escape(current_menu)}</b></td></tr>")
        keys = html.escape(shortcut_text(spec)) or "—"
        parts.append(
            f"<tr><td><tt>{keys}</tt></td><td><b>{html.escape(spec.text)}</b> — {html.escape(spec.help)}</td></tr>"
        )
    parts.append("<tr><td colspan='2'><b>Mouse</b></td></tr>")
    for gesture, effect in MOUSE_GESTURES:
        parts.append(f"<tr><td>{html.escape(gesture)}</td><td>{html.escape(effect)}</td></tr>")
    parts.append("</table><p>Press F1, ? or Escape to close.</p>")
    return "".join(parts)


class ShortcutHelpOverlay(QFrame):
    """A panel over the canvas listing :data:`ACTIONS` and :data:`MOUSE_GESTURES`; Escape or a click closes it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("shortcut-help")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.label = QLabel(help_html(), self)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setWordWrap(True)
        scroll = QScrollArea(self)
        scroll.setWidget(self.label)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.hide()
        parent.installEventFilter(self)

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
            return
        self._place()
        self.show()
        self.raise_()
        self.setFocus()

    def _place(self) -> None:
        parent = self.parentWidget()
        if parent is None:
            return
        width = min(parent.width() - 40, 760)
        height = parent.height() - 40
        self.setGeometry((parent.width() - width) // 2, 20, max(width, 200), max(height, 150))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return False

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Escape, Qt.Key.Key_F1, Qt.Key.Key_Question):
            self.hide()
            event.accept()
            return
        super().keyPressEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.hide()
        event.accept()
