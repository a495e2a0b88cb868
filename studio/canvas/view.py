"""The canvas view: wheel zoom anchored under the mouse, drag to pan, zoom to fit."""

from __future__ import annotations

import logging

from PySide6.QtCore import QPoint, QRectF, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QPainter, QWheelEvent
from PySide6.QtWidgets import QGraphicsView, QWidget

from studio.canvas.interactions import Interaction, PanInteraction
from studio.canvas.scene import WorkflowScene

logger = logging.getLogger(__name__)

MIN_ZOOM = 0.05
MAX_ZOOM = 4.0
WHEEL_STEP = 1.15
"""Zoom factor per wheel notch (120 units of angle delta)."""
FIT_MARGIN = 40.0
"""Space kept around the drawing by zoom to fit, in scene units."""


class CanvasView(QGraphicsView):
    """Shows a :class:`WorkflowScene`. The mouse mode is an :class:`Interaction` object."""

    sig_zoom_changed = Signal(float)
    """Emitted with the new zoom factor (1.0 is 100 %) after every zoom."""

    def __init__(self, scene: WorkflowScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._interaction: Interaction = PanInteraction(self)

    def workflow_scene(self) -> WorkflowScene:
        scene = self.scene()
        assert isinstance(scene, WorkflowScene)
        return scene

    def zoom(self) -> float:
        """Return the current zoom factor (1.0 is 100 %)."""
        return self.transform().m11()

    def set_interaction(self, interaction: Interaction) -> None:
        self._interaction = interaction

    def interaction(self) -> Interaction:
        return self._interaction

    def zoom_by(self, factor: float, anchor: tuple[float, float] | None = None) -> None:
        """Multiply the zoom by ``factor`` (clamped), keeping the scene point under ``anchor`` still.

        ``anchor`` is a viewport position in pixels. None means the viewport centre.
        """
        current = self.zoom()
        target = min(MAX_ZOOM, max(MIN_ZOOM, current * factor))
        if target == current:
            return
        if anchor is None:
            anchor = (self.viewport().width() / 2.0, self.viewport().height() / 2.0)
        anchor_point = QPoint(round(anchor[0]), round(anchor[1]))
        scene_point = self.mapToScene(anchor_point)
        self.scale(target / current, target / current)
        # Scroll so the scene point that was under the anchor is under it again.
        drift = self.mapFromScene(scene_point) - anchor_point
        self.pan_by(-drift.x(), -drift.y())
        self.sig_zoom_changed.emit(self.zoom())

    def zoom_to_fit(self) -> None:
        """Zoom and scroll so every node is visible, never zooming in past 100 %."""
        rect = self.workflow_scene().items_rect()
        if rect.isEmpty():
            return
        rect = rect.adjusted(-FIT_MARGIN, -FIT_MARGIN, FIT_MARGIN, FIT_MARGIN)
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.zoom() > 1.0:
            self.resetTransform()
            self.centerOn(rect.center())
        elif self.zoom() < MIN_ZOOM:
            self.resetTransform()
            self.scale(MIN_ZOOM, MIN_ZOOM)
            self.centerOn(rect.center())
        self.sig_zoom_changed.emit(self.zoom())

    def pan_by(self, dx: int, dy: int) -> None:
        """Scroll the view so the content moves by ``dx``, ``dy`` viewport pixels."""
        horizontal = self.horizontalScrollBar()
        vertical = self.verticalScrollBar()
        horizontal.setValue(horizontal.value() - dx)
        vertical.setValue(vertical.value() - dy)

    def visible_scene_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()

    # -- events ----------------------------------------------------------------------------

    def wheelEvent(self, event: QWheelEvent) -> None:
        notches = event.angleDelta().y() / 120.0
        if notches == 0:
            super().wheelEvent(event)
            return
        position = event.position()
        self.zoom_by(WHEEL_STEP**notches, (position.x(), position.y()))
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_F and event.modifiers() == Qt.KeyboardModifier.NoModifier:
            self.zoom_to_fit()
            event.accept()
            return
        super().keyPressEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if not self._interaction.mouse_pressed(event):
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if not self._interaction.mouse_moved(event):
            super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if not self._interaction.mouse_released(event):
            super().mouseReleaseEvent(event)
