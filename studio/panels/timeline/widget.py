"""The timeline widget: paints a TimelineModel with a time axis, zoom, pan and a live "now" line."""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QHelpEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import QScrollBar, QSizePolicy, QToolTip, QWidget

from studio.panels.timeline.model import (
    STATUS_COLORS,
    Segment,
    TimelineGeometry,
    TimelineModel,
    VisibleLane,
    time_ticks,
)

logger = logging.getLogger(__name__)

NOW_LINE_INTERVAL_MS = 33
"""Repaint interval of the "now" line while a run is live: about 30 frames per second."""
MIN_PIXELS_PER_SECOND = 1e-4
MAX_PIXELS_PER_SECOND = 1e6
ZOOM_STEP = 1.25
FIT_MARGIN_PX = 24.0


def palette() -> QPalette:
    return QGuiApplication.palette()


def status_color(status: str) -> QColor:
    return QColor(STATUS_COLORS.get(status, STATUS_COLORS["pending"]))


def secondary_text(colors: QPalette) -> QColor:
    color = QColor(colors.color(QPalette.ColorRole.Text))
    color.setAlphaF(0.65)
    return color


class TimelineWidget(QWidget):
    """Draws one lane per step and per for_each item, with a bar per attempt.

    Wheel or Ctrl+wheel zooms around the pointer, Shift+wheel and dragging pan along time, the
    wheel over the lane labels scrolls the lanes. Keys: ``+``/``-`` zoom, Left/Right pan,
    Up/Down scroll, ``0`` or Home fits the whole run. Until the user zooms or pans, the view
    keeps the whole run in sight as it grows.
    """

    sig_segment_clicked = Signal(str, str)
    """Emitted with the step key and step id of the bar the user clicked."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = TimelineModel()
        self.view_geometry = TimelineGeometry(origin=0.0, pixels_per_second=100.0)
        self.auto_fit = True
        self.paint_count = 0
        """Number of paint events so far (the UI benchmark reads it)."""
        self.selected_key: str | None = None
        self._drag_start: QPointF | None = None
        self._drag_moved = False
        self._drag_geometry = self.view_geometry
        self._now_timer = QTimer(self)
        self._now_timer.setInterval(NOW_LINE_INTERVAL_MS)
        self._now_timer.timeout.connect(self._on_now_timer_timeout)
        self._scroll_state: tuple[float, float, float, int, int] | None = None
        self.scroll_bar = QScrollBar(Qt.Orientation.Vertical, self)
        self.scroll_bar.valueChanged.connect(self._on_scroll_bar_value_changed)
        self.scroll_bar.hide()
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(False)
        self.setMinimumHeight(80)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    # -- model ------------------------------------------------------------------------------

    def set_model(self, model: TimelineModel) -> None:
        """Show ``model`` (a new run) and fit it to the width."""
        self.model = model
        self.auto_fit = True
        self.selected_key = None
        self.view_geometry = TimelineGeometry(origin=0.0, pixels_per_second=100.0)
        self._sync_scroll_bar()
        self.refresh()

    def refresh(self) -> None:
        """Repaint after the model changed; start or stop the "now" timer to match the run."""
        if self.auto_fit:
            self._fit()
        if self.model.is_live():
            if not self._now_timer.isActive():
                self._now_timer.start()
                self.update()
            # Otherwise the running "now" timer repaints within one interval, so changes need no paint of their own.
            return
        if self._now_timer.isActive():
            self._now_timer.stop()
        self._sync_scroll_bar()
        self.update()

    def _on_now_timer_timeout(self) -> None:
        self._sync_scroll_bar()
        self.update()

    def is_animating(self) -> bool:
        """Return True while the "now" timer repaints the widget."""
        return self._now_timer.isActive()

    def visible_lanes(self) -> list[VisibleLane]:
        return self.model.visible_lanes()

    def bar_rect(self, step_key: str, index: int = -1) -> QRectF | None:
        """Return the widget rectangle of a bar of ``step_key`` (the last one by default), if it is visible."""
        rows = self.model.visible_lanes()
        for row, visible in enumerate(rows):
            if step_key not in visible.lane.step_keys:
                continue
            segments = self.model.segments.get(step_key)
            if not segments:
                return None
            rect = self.view_geometry.bar_rect(segments[index], row, self._now())
            return QRectF(rect.x, rect.y, rect.width, rect.height)
        return None

    # -- zoom and pan -----------------------------------------------------------------------

    def fit(self) -> None:
        """Show the whole run and follow it as it grows."""
        self.auto_fit = True
        self._fit()
        self.update()

    def _fit(self) -> None:
        start, end = self.model.time_span(self._now())
        span = max(end - start, 0.05)
        width = max(self.width() - self.view_geometry.label_width - 2 * FIT_MARGIN_PX, 40.0)
        pixels_per_second = min(max(width / span, MIN_PIXELS_PER_SECOND), MAX_PIXELS_PER_SECOND)
        origin = start - FIT_MARGIN_PX / pixels_per_second
        self._set_geometry(origin=origin, pixels_per_second=pixels_per_second)

    def zoom_by(self, factor: float, anchor_x: float | None = None) -> None:
        """Multiply the zoom by ``factor``, keeping the time under ``anchor_x`` (default: the middle) in place."""
        geometry = self.view_geometry
        x = anchor_x if anchor_x is not None else (geometry.label_width + self.width()) / 2
        anchor_time = geometry.time_at(x)
        pixels_per_second = min(max(geometry.pixels_per_second * factor, MIN_PIXELS_PER_SECOND), MAX_PIXELS_PER_SECOND)
        origin = anchor_time - (x - geometry.label_width) / pixels_per_second
        self.auto_fit = False
        self._set_geometry(origin=origin, pixels_per_second=pixels_per_second)
        self.update()

    def pan_by(self, dx: float, dy: float = 0.0) -> None:
        """Move the view by ``dx`` pixels along time and ``dy`` pixels across lanes."""
        geometry = self.view_geometry
        origin = geometry.origin - dx / geometry.pixels_per_second
        self.auto_fit = False
        self._set_geometry(origin=origin, scroll_y=self._clamped_scroll(geometry.scroll_y - dy))
        self._sync_scroll_bar()
        self.update()

    def _clamped_scroll(self, scroll_y: float) -> float:
        geometry = self.view_geometry
        content = len(self.model.visible_lanes()) * geometry.lane_height
        room = self.height() - geometry.axis_height
        return min(max(scroll_y, 0.0), max(content - room, 0.0))

    def _set_geometry(self, **changes: float) -> None:
        values = {
            "origin": self.view_geometry.origin,
            "pixels_per_second": self.view_geometry.pixels_per_second,
            "scroll_y": self.view_geometry.scroll_y,
            **changes,
        }
        self.view_geometry = TimelineGeometry(**values)

    def _sync_scroll_bar(self) -> None:
        """Match the lane scroll bar to the lanes shown; hide it when they all fit."""
        geometry = self.view_geometry
        room = max(self.height() - geometry.axis_height, 0.0)
        maximum = max(len(self.model.visible_lanes()) * geometry.lane_height - room, 0.0)
        state = (room, maximum, geometry.scroll_y, self.width(), self.height())
        if state == self._scroll_state:
            # Changing the scroll bar repaints the widget under it, so unchanged values are not set again.
            return
        self._scroll_state = state
        if geometry.scroll_y > maximum:
            self.view_geometry = TimelineGeometry(geometry.origin, geometry.pixels_per_second, scroll_y=maximum)
        self.scroll_bar.blockSignals(True)
        self.scroll_bar.setRange(0, int(maximum))
        self.scroll_bar.setPageStep(int(room))
        self.scroll_bar.setSingleStep(int(geometry.lane_height))
        self.scroll_bar.setValue(int(self.view_geometry.scroll_y))
        self.scroll_bar.blockSignals(False)
        width = self.scroll_bar.sizeHint().width()
        self.scroll_bar.setGeometry(self.width() - width, int(geometry.axis_height), width, int(room))
        self.scroll_bar.setVisible(maximum > 0)

    def _on_scroll_bar_value_changed(self, value: int) -> None:
        geometry = self.view_geometry
        self.view_geometry = TimelineGeometry(geometry.origin, geometry.pixels_per_second, scroll_y=float(value))
        self.update()

    # -- input ------------------------------------------------------------------------------

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta()
        position = event.position()
        modifiers = event.modifiers()
        if delta.x() and not delta.y():
            self.pan_by(delta.x() / 2)
        elif modifiers & Qt.KeyboardModifier.ShiftModifier:
            self.pan_by(delta.y() / 2)
        elif position.x() < self.view_geometry.label_width and not modifiers & Qt.KeyboardModifier.ControlModifier:
            self.pan_by(0.0, delta.y() / 4)
        elif delta.y():
            self.zoom_by(ZOOM_STEP ** (delta.y() / 120), position.x())
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        step = max(self.width() / 8, 20.0)
        actions = {
            Qt.Key.Key_Plus: lambda: self.zoom_by(ZOOM_STEP),
            Qt.Key.Key_Equal: lambda: self.zoom_by(ZOOM_STEP),
            Qt.Key.Key_Minus: lambda: self.zoom_by(1 / ZOOM_STEP),
            Qt.Key.Key_Left: lambda: self.pan_by(step),
            Qt.Key.Key_Right: lambda: self.pan_by(-step),
            Qt.Key.Key_Up: lambda: self.pan_by(0.0, self.view_geometry.lane_height),
            Qt.Key.Key_Down: lambda: self.pan_by(0.0, -self.view_geometry.lane_height),
            Qt.Key.Key_0: self.fit,
            Qt.Key.Key_Home: self.fit,
        }
        action = actions.get(Qt.Key(key))
        if action is None:
            super().keyPressEvent(event)
            return
        action()
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        self._drag_start = event.position()
        self._drag_geometry = self.view_geometry
        self._drag_moved = False
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag_start is None:
            return
        offset = event.position() - self._drag_start
        if not self._drag_moved and abs(offset.x()) + abs(offset.y()) < 4:
            return
        self._drag_moved = True
        self.view_geometry = self._drag_geometry
        self.pan_by(offset.x(), offset.y())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        start, self._drag_start = self._drag_start, None
        if start is None or self._drag_moved or event.button() != Qt.MouseButton.LeftButton:
            return
        self.click_at(event.position().x(), event.position().y())

    def click_at(self, x: float, y: float) -> Segment | None:
        """Handle a click at widget coordinates: toggle a for_each lane or select a bar; return the bar."""
        rows = self.model.visible_lanes()
        row = self.view_geometry.row_at(y)
        if row is not None and row < len(rows) and x < self.view_geometry.label_width:
            lane = rows[row].lane
            if lane.children:
                self.model.toggle(lane.key)
                self._sync_scroll_bar()
                self.update()
            return None
        segment = self.view_geometry.hit(rows, self.model, x, y, self._now())
        if segment is not None:
            self.selected_key = segment.step_key
            self.update()
            self.sig_segment_clicked.emit(segment.step_key, segment.step_id)
        return segment

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            segment = self.view_geometry.hit(self.model.visible_lanes(), self.model, event.x(), event.y(), self._now())
            if segment is None:
                QToolTip.hideText()
            else:
                QToolTip.showText(event.globalPos(), self._describe(segment), self)
            return True
        return super().event(event)

    def _describe(self, segment: Segment) -> str:
        end = segment.end if segment.end is not None else self._now()
        what = {
            "attempt": f"attempt {segment.attempt}",
            "retry_delay": "waiting to retry",
            "waiting": "waiting for a person",
            "skipped": "skipped",
            "reused": "result reused from the earlier run",
            "pinned": "pinned output, not run",
        }.get(segment.kind, segment.kind)
        return f"{segment.step_key}\n{what}: {segment.status}, {end - segment.start:.3f} s"

    def resizeEvent(self, event: object) -> None:
        if self.auto_fit:
            self._fit()
        self._sync_scroll_bar()

    # -- painting ---------------------------------------------------------------------------

    def _now(self) -> float:
        return time.time()

    def paintEvent(self, event: QPaintEvent) -> None:
        self.paint_count += 1
        if self.auto_fit and self.model.is_live():
            self._fit()
        painter = QPainter(self)
        colors = palette()
        painter.fillRect(self.rect(), colors.base())
        rows = self.model.visible_lanes()
        now = self._now()
        geometry = self.view_geometry
        self._paint_lanes(painter, rows)
        self._paint_pauses(painter, now)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for row, visible in enumerate(rows):
            top = geometry.lane_top(row)
            if top + geometry.lane_height < geometry.axis_height or top > self.height():
                continue
            for segment in self.model.lane_segments(visible.lane):
                self._paint_segment(painter, segment, row, now)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        self._paint_now_line(painter, now)
        self._paint_axis(painter, now)
        self._paint_labels(painter, rows)
        if not rows:
            painter.setPen(secondary_text(colors))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Select a run to see its timeline")
        painter.end()

    def _paint_lanes(self, painter: QPainter, rows: list[VisibleLane]) -> None:
        geometry = self.view_geometry
        stripe = QColor(palette().alternateBase().color())
        for row in range(len(rows)):
            if row % 2:
                top = geometry.lane_top(row)
                painter.fillRect(QRectF(0, top, self.width(), geometry.lane_height), stripe)

    def _paint_pauses(self, painter: QPainter, now: float) -> None:
        color = QColor(palette().mid().color())
        color.setAlpha(70)
        geometry = self.view_geometry
        for start, end in self.model.pauses:
            assert start is not None
            left = max(geometry.x_of(start), geometry.label_width)
            right = geometry.x_of(end if end is not None else now)
            if right > left:
                area = QRectF(left, geometry.axis_height, right - left, self.height())
                painter.fillRect(area, QColor(color))
                painter.fillRect(area, Qt.BrushStyle.BDiagPattern)

    def _paint_segment(self, painter: QPainter, segment: Segment, row: int, now: float) -> None:
        rect = self.view_geometry.bar_rect(segment, row, now)
        if rect.x + rect.width < self.view_geometry.label_width or rect.x > self.width():
            return
        color = status_color(segment.status)
        area = QRectF(rect.x, rect.y, rect.width, rect.height)
        if segment.kind in ("waiting", "reused", "pinned"):
            fill = QColor(color)
            fill.setAlpha(110 if segment.kind == "waiting" else 60)
            painter.setBrush(fill)
            painter.setPen(QPen(color, 1.0, Qt.PenStyle.DashLine))
        else:
            painter.setBrush(color)
            painter.setPen(Qt.PenStyle.NoPen)
        painter.drawRoundedRect(area, 2.0, 2.0)
        if segment.step_key == self.selected_key:
            # An outline around the bar, so the bar keeps its status colour.
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(palette().highlight().color(), 2.0))
            painter.drawRoundedRect(area.adjusted(-2.0, -2.0, 2.0, 2.0), 3.0, 3.0)
        if segment.kind == "attempt" and rect.width > 60:
            painter.setPen(QColor("white"))
            label = segment.step_id if segment.attempt <= 1 else f"{segment.step_id} #{segment.attempt}"
            painter.drawText(area.adjusted(4, 0, -2, 0), Qt.AlignmentFlag.AlignVCenter, label)

    def _paint_now_line(self, painter: QPainter, now: float) -> None:
        if not self.model.is_live():
            return
        x = self.view_geometry.x_of(now)
        if self.view_geometry.label_width <= x <= self.width():
            painter.setPen(QPen(QColor("#d64545"), 1.5))
            painter.drawLine(QPointF(x, self.view_geometry.axis_height - 4), QPointF(x, self.height()))

    def _paint_axis(self, painter: QPainter, now: float) -> None:
        colors = palette()
        geometry = self.view_geometry
        painter.fillRect(QRectF(0, 0, self.width(), geometry.axis_height), colors.window())
        run_start, _end = self.model.time_span(now)
        first = geometry.time_at(geometry.label_width)
        last = geometry.time_at(self.width())
        grid = QColor(colors.mid().color())
        grid.setAlpha(90)
        for at, label in time_ticks(run_start, first, last, geometry.pixels_per_second):
            x = geometry.x_of(at)
            painter.setPen(grid)
            painter.drawLine(QPointF(x, geometry.axis_height), QPointF(x, self.height()))
            painter.setPen(colors.text().color())
            painter.drawLine(QPointF(x, geometry.axis_height - 5), QPointF(x, geometry.axis_height))
            painter.drawText(QRectF(x + 3, 0, 90, geometry.axis_height - 4), Qt.AlignmentFlag.AlignBottom, label)

    def _paint_labels(self, painter: QPainter, rows: list[VisibleLane]) -> None:
        colors = palette()
        geometry = self.view_geometry
        painter.fillRect(QRectF(0, geometry.axis_height, geometry.label_width, self.height()), colors.window())
        painter.setPen(colors.text().color())
        for row, visible in enumerate(rows):
            top = geometry.lane_top(row)
            if top + geometry.lane_height < geometry.axis_height or top > self.height():
                continue
            indent = 8 + visible.depth * 14
            lane = visible.lane
            marker = "  "
            if lane.children:
                marker = "▸ " if visible.collapsed else "▾ "
            suffix = f"  ({len(lane.children)})" if lane.children and visible.collapsed else ""
            area = QRectF(indent, top, geometry.label_width - indent - 4, geometry.lane_height)
            text = painter.fontMetrics().elidedText(
                marker + lane.label + suffix, Qt.TextElideMode.ElideRight, int(area.width())
            )
            painter.drawText(area, Qt.AlignmentFlag.AlignVCenter, text)
        painter.fillRect(QRectF(0, 0, geometry.label_width, geometry.axis_height), colors.window())
        painter.setPen(QColor(colors.mid().color()))
        painter.drawLine(QPointF(geometry.label_width, 0), QPointF(geometry.label_width, self.height()))
        painter.setPen(colors.text().color())
        painter.drawText(
            QRectF(8, 0, geometry.label_width, geometry.axis_height - 4),
            Qt.AlignmentFlag.AlignBottom,
            self._status_text(),
        )

    def _status_text(self) -> str:
        if self.model.run_start is None:
            return ""
        return f"Run {self.model.run_status}"
