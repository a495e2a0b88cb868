"""Mouse modes of the canvas view as small objects: pan, select, move, connect and rubber-band selection."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, QPointF, QRect, QSize, Qt
from PySide6.QtGui import QMouseEvent, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QApplication, QGraphicsItem, QGraphicsPathItem, QRubberBand

from studio.canvas import theme
from studio.canvas.edge_item import EdgeItem
from studio.canvas.node_item import PORT_INPUT, PORT_OUTPUT, NodeItem

if TYPE_CHECKING:
    from studio.canvas.editing import CanvasEditing
    from studio.canvas.view import CanvasView

logger = logging.getLogger(__name__)


class Interaction:
    """Base mouse mode: handles nothing, so the view's default behaviour (clicks, selection) applies.

    Each handler returns True when it consumed the event.
    """

    def __init__(self, view: CanvasView) -> None:
        self.view = view

    def mouse_pressed(self, event: QMouseEvent) -> bool:
        return False

    def mouse_moved(self, event: QMouseEvent) -> bool:
        return False

    def mouse_released(self, event: QMouseEvent) -> bool:
        return False

    def mouse_double_clicked(self, event: QMouseEvent) -> bool:
        return False


class PanInteraction(Interaction):
    """Drag the canvas with the left button on empty space, or with the middle button anywhere."""

    def __init__(self, view: CanvasView) -> None:
        super().__init__(view)
        self._last: QPoint | None = None

    @property
    def active(self) -> bool:
        return self._last is not None

    def start(self, position: QPoint) -> None:
        self._last = position
        self.view.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)

    def mouse_pressed(self, event: QMouseEvent) -> bool:
        on_item = self.view.itemAt(event.position().toPoint()) is not None
        left_on_background = event.button() == Qt.MouseButton.LeftButton and not on_item
        if event.button() == Qt.MouseButton.MiddleButton or left_on_background:
            self.start(event.position().toPoint())
            return True
        return False

    def mouse_moved(self, event: QMouseEvent) -> bool:
        if self._last is None:
            return False
        position = event.position().toPoint()
        delta = position - self._last
        self._last = position
        self.view.pan_by(delta.x(), delta.y())
        return True

    def mouse_released(self, event: QMouseEvent) -> bool:
        if self._last is None:
            return False
        self._last = None
        if self.view.space_held:
            self.view.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
        else:
            self.view.viewport().unsetCursor()
        return True


class EditInteraction(Interaction):
    """The editor's idle mode: decides on each press which mode handles the drag that follows.

    - middle button, or left button with space held: pan;
    - left on a port: connect (:class:`ConnectInteraction`);
    - left on a note's resize corner: resize the note;
    - left on a node or note: select it, then move the selection (:class:`MoveInteraction`);
    - left on empty canvas: rubber-band selection (:class:`RubberBandInteraction`);
    - double-click on empty canvas: quick-add; on a note: edit its text.

    Ctrl toggles the pressed node in the selection and Shift adds it.
    """

    def __init__(self, view: CanvasView, editing: CanvasEditing) -> None:
        super().__init__(view)
        self.editing = editing
        self._active: Interaction | None = None

    def _delegate(self, interaction: Interaction, event: QMouseEvent) -> bool:
        self._active = interaction
        return True

    def mouse_pressed(self, event: QMouseEvent) -> bool:
        if self._active is not None:
            return self._active.mouse_pressed(event)
        position = event.position().toPoint()
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self.view.space_held):
            pan = PanInteraction(self.view)
            pan.start(position)
            return self._delegate(pan, event)
        if button != Qt.MouseButton.LeftButton:
            return False
        port = self.view.port_at(position)
        if port is not None and not self.editing.document.read_only:
            return self._delegate(ConnectInteraction(self.view, self.editing, port[0], port[1]), event)
        note = self.editing.annotations.note_at(self.view.mapToScene(position))
        if note is not None and note.resize_handle_contains(self.view.mapToScene(position)):
            return self._delegate(NoteResizeInteraction(self.view, self.editing, note.note_id, position), event)
        node = self.view.node_at(position)
        if node is not None or note is not None:
            self._select_on_press(node, note, event.modifiers())
            return self._delegate(MoveInteraction(self.view, self.editing, node, position, event.modifiers()), event)
        if any(isinstance(item, EdgeItem) and item.isEnabled() for item in self.view.items_at(position)):
            return False  # Qt's own click selection handles edges.
        return self._delegate(RubberBandInteraction(self.view, self.editing, position, event.modifiers()), event)

    def _select_on_press(self, node: NodeItem | None, note: QGraphicsItem | None, modifiers: Qt.KeyboardModifier) -> None:
        toggle = bool(modifiers & Qt.KeyboardModifier.ControlModifier)
        add = bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
        if node is not None:
            selected = node.step_id in self.view.selected_step_ids()
            if toggle:
                ids = set(self.view.selected_step_ids()) ^ {node.step_id}
                self.view.set_selected_step_ids(ids)
            elif add or selected:
                self.view.set_selected_step_ids([node.step_id], add=True)
            else:
                self.view.scene().clearSelection()
                self.view.set_selected_step_ids([node.step_id])
            return
        if note is None:
            return
        if toggle:
            note.setSelected(not note.isSelected())
        elif not note.isSelected():
            if not add:
                self.view.scene().clearSelection()
                self.view.set_selected_step_ids([])
            note.setSelected(True)

    def mouse_moved(self, event: QMouseEvent) -> bool:
        self.editing.remember_mouse(self.view.mapToScene(event.position().toPoint()))
        if self._active is not None:
            return self._active.mouse_moved(event)
        self._hover_ports(event.position().toPoint())
        return False

    def _hover_ports(self, position: QPoint) -> None:
        port = self.view.port_at(position)
        self.editing.set_port_highlight(port)

    def mouse_released(self, event: QMouseEvent) -> bool:
        if self._active is None:
            return False
        handled = self._active.mouse_released(event)
        self._active = None
        return handled

    def mouse_double_clicked(self, event: QMouseEvent) -> bool:
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        position = event.position().toPoint()
        scene_pos = self.view.mapToScene(position)
        note = self.editing.annotations.note_at(scene_pos)
        if note is not None:
            self.editing.edit_note(note.note_id)
            return True
        if self.view.node_at(position) is not None:
            return False
        group = self.editing.annotations.group_title_at(scene_pos)
        if group is not None:
            self.editing.rename_group(group)
            return True
        if any(isinstance(item, EdgeItem) for item in self.view.items_at(position)):
            return False
        self.editing.open_quick_add(scene_pos)
        return True


class MoveInteraction(Interaction):
    """Move the selected steps and notes with the mouse.

    Steps move through ``document.move_steps(..., merge=True)`` on every mouse move, so the scene
    follows the document and the whole drag is one undo step, closed by ``end_move()`` on release.
    Notes follow visually and are written to the document on release. A press without a drag
    (less than the platform's drag distance) only changes the selection.
    """

    def __init__(
        self,
        view: CanvasView,
        editing: CanvasEditing,
        pressed: NodeItem | None,
        position: QPoint,
        modifiers: Qt.KeyboardModifier,
    ) -> None:
        super().__init__(view)
        self.editing = editing
        self._pressed = pressed
        self._press_pos = position
        self._press_scene = view.mapToScene(position)
        self._modifiers = modifiers
        self._dragging = False
        self._moved_steps = False
        self._step_starts = editing.step_positions(editing.movable_selection())
        self._note_starts = {note.note_id: (note.pos().x(), note.pos().y()) for note in editing.annotations.selected_notes()}

    def mouse_moved(self, event: QMouseEvent) -> bool:
        position = event.position().toPoint()
        if not self._dragging:
            if (position - self._press_pos).manhattanLength() < QApplication.startDragDistance():
                return True
            if self.editing.document.read_only:
                self.editing.show_message("This workflow is read-only, so its steps cannot be moved")
                return True
            self._dragging = True
        scene_pos = self.view.mapToScene(position)
        dx, dy = self._snapped_delta(scene_pos.x() - self._press_scene.x(), scene_pos.y() - self._press_scene.y())
        if self._step_starts:
            positions = {step_id: (x + dx, y + dy) for step_id, (x, y) in self._step_starts.items()}
            self.editing.document.move_steps(positions, merge=True)
            self._moved_steps = True
        for note_id, (x, y) in self._note_starts.items():
            self.editing.annotations.move_note_item(note_id, x + dx, y + dy)
        return True

    def _snapped_delta(self, dx: float, dy: float) -> tuple[float, float]:
        """Snap the pressed step's corner (or the first moved item's) to the grid and move the rest alike."""
        if not self.editing.snap_enabled:
            return (dx, dy)
        starts = list(self._step_starts.values()) + list(self._note_starts.values())
        if self._pressed is not None and self._pressed.step_id in self._step_starts:
            starts.insert(0, self._step_starts[self._pressed.step_id])
        if not starts:
            return (dx, dy)
        x, y = starts[0]
        grid = self.editing.grid_size
        return (round((x + dx) / grid) * grid - x, round((y + dy) / grid) * grid - y)

    def mouse_released(self, event: QMouseEvent) -> bool:
        if not self._dragging:
            self._click_without_drag()
            return True
        document = self.editing.document
        if self._moved_steps:
            document.end_move()
        if self._note_starts:
            self.editing.annotations.commit_note_moves(list(self._note_starts))
        if self._pressed is not None and len(self._step_starts) == 1:
            self.editing.splice_if_dropped_on_edge(self._pressed.step_id)
        return True

    def _click_without_drag(self) -> None:
        plain = not self._modifiers & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        if plain and self._pressed is not None:
            self.view.scene().clearSelection()
            self.view.set_selected_step_ids([self._pressed.step_id])


class ConnectInteraction(Interaction):
    """Drag from a port to another node's port (or body) to connect; drop on empty canvas to quick-add.

    Dragging from an output port connects that step to the drop target. Dragging from an input
    port connects the drop target to that step. Errors of the document (a cycle, a duplicate edge,
    steps in different scopes) are shown as a message and change nothing.
    """

    def __init__(self, view: CanvasView, editing: CanvasEditing, node: NodeItem, port: str) -> None:
        super().__init__(view)
        self.editing = editing
        self._node = node
        self._port = port
        self._target: NodeItem | None = None
        self._draft = QGraphicsPathItem()
        pen = QPen(theme.palette().color(QPalette.ColorRole.Highlight), 2.0, Qt.PenStyle.DashLine)
        self._draft.setPen(pen)
        self._draft.setZValue(10.0)
        view.scene().addItem(self._draft)
        self._update_draft(node.port_center(port))

    def _update_draft(self, end: QPointF) -> None:
        start = self._node.port_center(self._port)
        if self._port == PORT_INPUT:
            start, end = end, start
        reach = max(40.0, abs(end.x() - start.x()) / 2.0)
        path = QPainterPath(start)
        path.cubicTo(QPointF(start.x() + reach, start.y()), QPointF(end.x() - reach, end.y()), end)
        self._draft.setPath(path)

    def mouse_moved(self, event: QMouseEvent) -> bool:
        position = event.position().toPoint()
        self._update_draft(self.view.mapToScene(position))
        target = self.view.node_at(position)
        if target is self._node:
            target = None
        if target is not self._target:
            if self._target is not None:
                self._target.set_highlighted_port(None)
            self._target = target
            if target is not None:
                target.set_highlighted_port(PORT_INPUT if self._port == PORT_OUTPUT else PORT_OUTPUT)
        return True

    def mouse_released(self, event: QMouseEvent) -> bool:
        self.view.scene().removeItem(self._draft)
        if self._target is not None:
            self._target.set_highlighted_port(None)
        position = event.position().toPoint()
        target = self.view.node_at(position)
        if target is self._node:
            return True
        if target is None:
            scene_pos = self.view.mapToScene(position)
            if self._port == PORT_OUTPUT:
                self.editing.open_quick_add(scene_pos, connect_from=self._node.step_id)
            else:
                self.editing.open_quick_add(scene_pos, connect_to=self._node.step_id)
            return True
        if self._port == PORT_OUTPUT:
            self.editing.connect_steps(self._node.step_id, target.step_id)
        else:
            self.editing.connect_steps(target.step_id, self._node.step_id)
        return True


class RubberBandInteraction(Interaction):
    """Select the nodes and notes touched by a rectangle dragged on empty canvas.

    Without Ctrl or Shift the rectangle replaces the selection; a plain click clears it.
    """

    def __init__(self, view: CanvasView, editing: CanvasEditing, position: QPoint, modifiers: Qt.KeyboardModifier) -> None:
        super().__init__(view)
        self.editing = editing
        self._origin = position
        self._add = bool(modifiers & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier))
        self._band = QRubberBand(QRubberBand.Shape.Rectangle, view.viewport())
        self._band.setGeometry(QRect(position, QSize()))

    def mouse_moved(self, event: QMouseEvent) -> bool:
        self._band.setGeometry(QRect(self._origin, event.position().toPoint()).normalized())
        self._band.show()
        return True

    def mouse_released(self, event: QMouseEvent) -> bool:
        rect = QRect(self._origin, event.position().toPoint()).normalized()
        self._band.hide()
        self._band.deleteLater()
        scene_rect = self.view.mapToScene(rect).boundingRect()
        if not self._add:
            self.view.scene().clearSelection()
            self.view.set_selected_step_ids([])
        if rect.width() < 2 and rect.height() < 2:
            return True
        ids = [
            step_id
            for step_id, item in self.view.workflow_scene().node_items().items()
            if (item.parentItem() is None and scene_rect.intersects(item.sceneBoundingRect()))
            or scene_rect.contains(item.sceneBoundingRect())
        ]
        self.view.set_selected_step_ids(ids, add=True)
        for note in self.editing.annotations.note_items():
            if scene_rect.intersects(note.sceneBoundingRect()):
                note.setSelected(True)
        return True


class NoteResizeInteraction(Interaction):
    """Resize a sticky note by its bottom-right corner; the new size is written to the document on release."""

    def __init__(self, view: CanvasView, editing: CanvasEditing, note_id: str, position: QPoint) -> None:
        super().__init__(view)
        self.editing = editing
        self._note_id = note_id
        self._press_scene = view.mapToScene(position)
        note = editing.annotations.note_item(note_id)
        assert note is not None
        self._start_size = note.size()

    def mouse_moved(self, event: QMouseEvent) -> bool:
        scene_pos = self.view.mapToScene(event.position().toPoint())
        width = self._start_size[0] + scene_pos.x() - self._press_scene.x()
        height = self._start_size[1] + scene_pos.y() - self._press_scene.y()
        self.editing.annotations.resize_note_item(self._note_id, width, height)
        return True

    def mouse_released(self, event: QMouseEvent) -> bool:
        self.editing.annotations.commit_note_resize(self._note_id)
        return True

