"""Sticky note and group frame items, kept in step with an EditorDocument's notes and groups."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import QObject, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFocusEvent, QFont, QFontMetricsF, QKeyEvent, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsObject,
    QGraphicsTextItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

from studio.canvas import theme
from studio.model.workflow import Group, StickyNote

if TYPE_CHECKING:
    from studio.canvas.document import EditorDocument
    from studio.canvas.scene import WorkflowScene

logger = logging.getLogger(__name__)

NOTE_MIN_SIZE = (80.0, 40.0)
"""Smallest width and height a note can be resized to, in scene units."""
NOTE_PADDING = 8.0
RESIZE_HANDLE = 14.0
"""Edge length of the resize corner at a note's bottom-right, in scene units."""
GROUP_PADDING = 24.0
"""Space between a group's frame and its steps' boxes, in scene units."""
GROUP_TITLE_HEIGHT = 26.0
GROUP_TITLE_MIN_PIXELS = 9.0
"""Smallest on-screen height of a group title while the title bar has room for it, in pixels."""


class _NoteText(QGraphicsTextItem):
    """The note's text. While editing, losing focus or pressing Escape ends the edit."""

    def __init__(self, parent: NoteItem, on_finished: Callable[[], None]) -> None:
        super().__init__(parent)
        self._on_finished = on_finished

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        self._on_finished()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.clearFocus()
            event.accept()
            return
        super().keyPressEvent(event)


class NoteItem(QGraphicsObject):
    """A sticky note: coloured box with wrapped text and a resize corner, keyed by the note id."""

    def __init__(self, note: StickyNote, on_text_edited: Callable[[str, str], None]) -> None:
        super().__init__()
        self._note_id = note.id
        self._size = (note.width, note.height)
        self._color = note.color
        self._on_text_edited = on_text_edited
        self._text = _NoteText(self, self._finish_editing)
        self._text.setPos(NOTE_PADDING, NOTE_PADDING)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setZValue(-2.0)
        self.set_note(note)

    @property
    def note_id(self) -> str:
        return self._note_id

    def size(self) -> tuple[float, float]:
        return self._size

    def text(self) -> str:
        return self._text.toPlainText()

    @property
    def editing(self) -> bool:
        return bool(self._text.textInteractionFlags() & Qt.TextInteractionFlag.TextEditorInteraction)

    def set_note(self, note: StickyNote) -> None:
        """Copy position, size, colour and text from ``note``."""
        self.setPos(note.position.x, note.position.y)
        self.set_size(note.width, note.height)
        self._color = note.color
        if not self.editing and self._text.toPlainText() != note.text:
            self._text.setPlainText(note.text)
        self.apply_palette()

    def apply_palette(self) -> None:
        """Take the text colour from the current application palette."""
        self._text.setDefaultTextColor(theme.note_text(theme.palette()))
        self.update()

    def set_size(self, width: float, height: float) -> None:
        width = max(NOTE_MIN_SIZE[0], width)
        height = max(NOTE_MIN_SIZE[1], height)
        self.prepareGeometryChange()
        self._size = (width, height)
        self._text.setTextWidth(width - 2.0 * NOTE_PADDING)
        self.update()

    def start_editing(self) -> None:
        """Let the user type into the note; the text is committed when the editor loses focus."""
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.TextEditorInteraction)
        self._text.setFocus(Qt.FocusReason.MouseFocusReason)
        cursor = self._text.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self._text.setTextCursor(cursor)

    def _finish_editing(self) -> None:
        if not self.editing:
            return
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self._on_text_edited(self._note_id, self._text.toPlainText())

    def resize_handle_contains(self, scene_pos: QPointF) -> bool:
        local = self.mapFromScene(scene_pos)
        width, height = self._size
        return local.x() >= width - RESIZE_HANDLE and local.y() >= height - RESIZE_HANDLE

    def boundingRect(self) -> QRectF:
        width, height = self._size
        return QRectF(-2.0, -2.0, width + 4.0, height + 4.0)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        palette = theme.palette()
        width, height = self._size
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(palette.color(QPalette.ColorRole.Highlight), 2.5) if self.isSelected() else Qt.PenStyle.NoPen
        painter.setPen(pen)
        painter.setBrush(theme.note_fill(self._color, palette))
        painter.drawRoundedRect(QRectF(0.0, 0.0, width, height), 4.0, 4.0)
        grip = QColor(theme.note_text(palette))
        grip.setAlphaF(0.35)
        painter.setPen(QPen(grip, 1.2))
        for offset in (4.0, 8.0, 12.0):
            painter.drawLine(QPointF(width - offset, height - 2.0), QPointF(width - 2.0, height - offset))


class GroupItem(QGraphicsObject):
    """A titled frame drawn behind the steps of one group; its geometry follows the steps' boxes."""

    def __init__(self, group: Group) -> None:
        super().__init__()
        self._group_id = group.id
        self._title = group.title
        self._color = group.color
        self._rect = QRectF()
        self.setZValue(-3.0)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    @property
    def group_id(self) -> str:
        return self._group_id

    @property
    def title(self) -> str:
        return self._title

    def set_group(self, group: Group) -> None:
        self._title = group.title
        self._color = group.color
        self.update()

    def set_frame(self, rect: QRectF) -> None:
        """Place the frame around ``rect`` (the members' bounding box in scene units)."""
        frame = rect.adjusted(-GROUP_PADDING, -GROUP_PADDING - GROUP_TITLE_HEIGHT, GROUP_PADDING, GROUP_PADDING)
        if frame == self._rect:
            return
        self.prepareGeometryChange()
        self._rect = frame
        self.update()

    def title_rect(self) -> QRectF:
        return QRectF(self._rect.left(), self._rect.top(), self._rect.width(), GROUP_TITLE_HEIGHT)

    def boundingRect(self) -> QRectF:
        return self._rect.adjusted(-2.0, -2.0, 2.0, 2.0)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        palette = theme.palette()
        color = QColor(self._color)
        if not color.isValid():
            color = palette.color(QPalette.ColorRole.Highlight)
        fill = QColor(color)
        fill.setAlpha(40)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(color, 1.5))
        painter.setBrush(fill)
        painter.drawRoundedRect(self._rect, 10.0, 10.0)
        font = QFont(painter.font())
        font.setBold(True)
        # Zoomed out, the title grows in scene units so it stays readable, up to the title bar's height.
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        pixels = max(QFontMetricsF(font).height(), GROUP_TITLE_MIN_PIXELS / max(lod, 1e-3))
        font.setPixelSize(max(1, round(min(pixels, GROUP_TITLE_HEIGHT * 0.8))))
        painter.setFont(font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        metrics = QFontMetricsF(font)
        title_rect = self.title_rect().adjusted(12.0, 0.0, -12.0, 0.0)
        title = metrics.elidedText(self._title or "Group", Qt.TextElideMode.ElideRight, title_rect.width())
        painter.drawText(title_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, title)


class AnnotationLayer(QObject):
    """Keeps one :class:`NoteItem` per note and one :class:`GroupItem` per group of the document.

    Note moves and resizes are shown on the items first (during a drag) and written to the
    document by :meth:`commit_note_moves` and :meth:`commit_note_resize`, one undo step each.
    """

    def __init__(self, document: EditorDocument, scene: WorkflowScene, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._document = document
        self._scene = scene
        self._notes: dict[str, NoteItem] = {}
        self._groups: dict[str, GroupItem] = {}
        # The scene deletes every item when the document is reset, then emits sig_workflow_changed.
        document.sig_notes_changed.connect(self._sync_notes)
        document.sig_groups_changed.connect(self._sync_groups)
        document.sig_steps_moved.connect(self._on_steps_changed)
        document.sig_steps_removed.connect(self._on_steps_changed)
        document.sig_steps_added.connect(self._on_steps_changed)
        scene.sig_workflow_changed.connect(self.rebuild)
        self.rebuild()

    # -- items ---------------------------------------------------------------------------

    def note_item(self, note_id: str) -> NoteItem | None:
        return self._notes.get(note_id)

    def note_items(self) -> list[NoteItem]:
        return list(self._notes.values())

    def group_items(self) -> dict[str, GroupItem]:
        return dict(self._groups)

    def selected_notes(self) -> list[NoteItem]:
        return [item for item in self._notes.values() if item.isSelected()]

    def note_at(self, scene_pos: QPointF) -> NoteItem | None:
        for item in self._scene.items(scene_pos):
            if isinstance(item, NoteItem):
                return item
            if isinstance(item.parentItem(), NoteItem):
                parent = item.parentItem()
                assert isinstance(parent, NoteItem)
                return parent
        return None

    def apply_palette(self) -> None:
        """Recolour the notes after a light or dark theme switch."""
        for item in self._notes.values():
            item.apply_palette()

    def group_title_at(self, scene_pos: QPointF) -> str | None:
        """Return the id of the group whose title bar contains ``scene_pos``, or None."""
        for group_id, item in self._groups.items():
            if item.title_rect().contains(scene_pos):
                return group_id
        return None

    # -- syncing ---------------------------------------------------------------------------

    def rebuild(self) -> None:
        """Drop every note and group item and create them again from the document."""
        for item in [*self._notes.values(), *self._groups.values()]:
            if shiboken6.isValid(item) and item.scene() is self._scene:
                self._scene.removeItem(item)
        self._notes.clear()
        self._groups.clear()
        self._sync_notes()
        self._sync_groups()

    def _sync_notes(self) -> None:
        notes = {note.id: note for note in self._document.workflow.notes}
        for note_id in [note_id for note_id in self._notes if note_id not in notes]:
            self._scene.removeItem(self._notes.pop(note_id))
        for note_id, note in notes.items():
            item = self._notes.get(note_id)
            if item is None:
                item = NoteItem(note, self._on_note_text_edited)
                self._scene.addItem(item)
                self._notes[note_id] = item
            else:
                item.set_note(note)

    def _sync_groups(self) -> None:
        groups = {group.id: group for group in self._document.workflow.groups}
        for group_id in [group_id for group_id in self._groups if group_id not in groups]:
            self._scene.removeItem(self._groups.pop(group_id))
        for group_id, group in groups.items():
            item = self._groups.get(group_id)
            if item is None:
                item = GroupItem(group)
                self._scene.addItem(item)
                self._groups[group_id] = item
            else:
                item.set_group(group)
        self._update_group_frames()

    def _on_steps_changed(self, _step_ids: Any = None) -> None:
        if self._groups:
            self._update_group_frames()

    def _update_group_frames(self) -> None:
        for group in self._document.workflow.groups:
            item = self._groups.get(group.id)
            if item is None:
                continue
            rect = QRectF()
            for step_id in group.step_ids:
                node = self._scene.node_item(step_id)
                if node is not None:
                    rect = rect.united(node.mapRectToScene(QRectF(0.0, 0.0, *node.size())))
            item.setVisible(not rect.isEmpty())
            item.set_frame(rect)

    # -- edits -----------------------------------------------------------------------------

    def _on_note_text_edited(self, note_id: str, text: str) -> None:
        note = next((note for note in self._document.workflow.notes if note.id == note_id), None)
        if note is not None and note.text != text:
            self._document.set_note(note_id, text=text)

    def move_note_item(self, note_id: str, x: float, y: float) -> None:
        item = self._notes.get(note_id)
        if item is not None:
            item.setPos(x, y)

    def commit_note_moves(self, note_ids: list[str]) -> None:
        """Write the shown positions of ``note_ids`` to the document as one undo step."""
        with self._document.macro("Move notes"):
            for note_id in note_ids:
                item = self._notes.get(note_id)
                if item is not None:
                    self._document.set_note(note_id, position=(item.pos().x(), item.pos().y()))

    def resize_note_item(self, note_id: str, width: float, height: float) -> None:
        item = self._notes.get(note_id)
        if item is not None:
            item.set_size(width, height)

    def commit_note_resize(self, note_id: str) -> None:
        item = self._notes.get(note_id)
        if item is not None:
            self._document.set_note(note_id, size=item.size())
