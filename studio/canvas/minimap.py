"""A minimap in the canvas corner: every node as a box, the visible area as a frame, click or drag to scroll."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QWidget

from studio.canvas import theme
from studio.canvas.view import CanvasView

logger = logging.getLogger(__name__)

MINIMAP_SIZE = (180, 120)
"""Width and height of the minimap in device-independent pixels."""
MINIMAP_MARGIN = 12
REFRESH_DELAY_MS = 60
"""Scene changes are collected for this long before the minimap repaints, so a drag costs one repaint per frame."""


class Minimap(QWidget):
    """Overlays the bottom-right corner of ``view`` and mirrors its scene."""

    def __init__(self, view: CanvasView) -> None:
        super().__init__(view)
        self.setObjectName("minimap")
        self._view = view
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_DELAY_MS)
        self._timer.timeout.connect(self.update)
        self.resize(*MINIMAP_SIZE)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Minimap: click or drag to scroll the canvas")
        view.installEventFilter(self)
        view.horizontalScrollBar().valueChanged.connect(self._schedule)
        view.verticalScrollBar().valueChanged.connect(self._schedule)
        view.sig_zoom_changed.connect(self._schedule)
        view.workflow_scene().changed.connect(self._schedule)
        self._place()

    def _schedule(self, *_args: Any) -> None:
        if self.isVisible() and not self._timer.isActive():
            self._timer.start()

    def _place(self) -> None:
        # The view's own size, because its viewport is resized only after this filter receives the event.
        frame = self._view.frameWidth()
        self.move(
            self._view.width() - frame - self.width() - MINIMAP_MARGIN,
            self._view.height() - frame - self.height() - MINIMAP_MARGIN,
        )

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._view and event.type() == QEvent.Type.Resize:
            self._place()
        return False

    def world_rect(self) -> QRectF:
        """Return the scene area the minimap shows: all nodes plus the visible area."""
        return self._view.workflow_scene().items_rect().united(self._view.visible_scene_rect())

    def _transform(self) -> tuple[float, float, float]:
        """Return (scale, x offset, y offset) that map scene to minimap pixels, keeping the aspect ratio."""
        world = self.world_rect()
        if world.isEmpty():
            return (1.0, 0.0, 0.0)
        inner = QRectF(self.rect()).adjusted(4.0, 4.0, -4.0, -4.0)
        scale = min(inner.width() / world.width(), inner.height() / world.height())
        dx = inner.left() + (inner.width() - world.width() * scale) / 2.0 - world.left() * scale
        dy = inner.top() + (inner.height() - world.height() * scale) / 2.0 - world.top() * scale
        return (scale, dx, dy)

    def map_to_scene(self, point: QPointF) -> QPointF:
        scale, dx, dy = self._transform()
        return QPointF((point.x() - dx) / scale, (point.y() - dy) / scale)

    def paintEvent(self, event: QPaintEvent) -> None:
        palette = theme.palette()
        painter = QPainter(self)
        background = QColor(palette.color(QPalette.ColorRole.Base))
        background.setAlpha(225)
        painter.fillRect(self.rect(), background)
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Mid), 1.0))
        painter.drawRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5))
        scale, dx, dy = self._transform()
        painter.translate(dx, dy)
        painter.scale(scale, scale)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(palette.color(QPalette.ColorRole.Mid))
        boxes = [
            item.mapRectToScene(QRectF(0.0, 0.0, *item.size()))
            for item in self._view.workflow_scene().node_items().values()
            if item.parentItem() is None
        ]
        painter.drawRects(boxes)
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 2.0 / max(scale, 1e-6)))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(self._view.visible_scene_rect())
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._center_on(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._center_on(event)

    def _center_on(self, event: QMouseEvent) -> None:
        self._view.centerOn(self.map_to_scene(event.position()))
        self.update()
        event.accept()
