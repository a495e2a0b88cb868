"""Mouse modes of the canvas view as small objects, so an editor can add modes without branching."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QMouseEvent

if TYPE_CHECKING:
    from studio.canvas.view import CanvasView


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


class PanInteraction(Interaction):
    """Drag the canvas with the left button on empty space, or with the middle button anywhere."""

    def __init__(self, view: CanvasView) -> None:
        super().__init__(view)
        self._last: QPoint | None = None

    @property
    def active(self) -> bool:
        return self._last is not None

    def mouse_pressed(self, event: QMouseEvent) -> bool:
        on_item = self.view.itemAt(event.position().toPoint()) is not None
        left_on_background = event.button() == Qt.MouseButton.LeftButton and not on_item
        if event.button() == Qt.MouseButton.MiddleButton or left_on_background:
            self._last = event.position().toPoint()
            self.view.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
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
        self.view.viewport().unsetCursor()
        return True
