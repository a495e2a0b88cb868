"""The canvas view: zoom and pan, grid background, step drops, selection by id and the zoomed-out overview."""

from __future__ import annotations

import logging
import math

from PySide6.QtCore import QEvent, QLineF, QMimeData, QPoint, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFocusEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPalette,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import QGraphicsItem, QGraphicsView, QWidget

from studio.canvas import theme
from studio.canvas.arrange import GRID_SIZE
from studio.canvas.edge_item import EdgeItem
from studio.canvas.interactions import Interaction, PanInteraction
from studio.canvas.node_item import NodeItem
from studio.canvas.scene import WorkflowScene

logger = logging.getLogger(__name__)

MIN_ZOOM = 0.05
MAX_ZOOM = 4.0
WHEEL_STEP = 1.15
"""Zoom factor per wheel notch (120 units of angle delta)."""
KEY_ZOOM_STEP = 1.25
"""Zoom factor of one Zoom in or Zoom out command."""
FIT_MARGIN = 40.0
"""Space kept around the drawing by zoom to fit, in scene units."""
GRID_MIN_ZOOM = 0.5
"""Below this zoom factor the background grid is not drawn: its lines would merge into a tint."""
GRID_FINE_ZOOM = 0.9
"""From this zoom factor on, the grid shows every snap line. Below it, every fifth."""
OVERVIEW_ZOOM = 0.25
"""Below this zoom factor a large graph is drawn as one batch of boxes and lines (see :data:`OVERVIEW_MIN_NODES`)."""
OVERVIEW_MIN_NODES = 300
"""Graphs with fewer nodes than this are always drawn item by item."""
PAN_MARGIN = 100_000.0
"""Free space around the drawing the view can scroll into, in scene units.

The view keeps its own scene rectangle this much larger than the drawing. A change of the scroll range
shifts the picture under the mouse, and with this margin only a node placed past it causes one.
"""
STEP_TYPE_MIME = "application/x-workflow-studio-step-type"
"""MIME type of a palette drag. The data is the step type name in UTF-8."""


class CanvasView(QGraphicsView):
    """Shows a :class:`WorkflowScene`. The mouse mode is an :class:`Interaction` object.

    Zoomed far out, a graph of at least :data:`OVERVIEW_MIN_NODES` nodes is in *overview mode*: node
    and edge items are hidden and :meth:`drawForeground` paints every box and edge in one batch,
    which is several times faster than painting thousands of items. Hidden items cannot be selected
    in Qt, so the view keeps the selection by step id while in that mode: use
    :meth:`selected_step_ids` and :meth:`set_selected_step_ids` instead of the scene's selection.
    """

    sig_zoom_changed = Signal(float)
    """Emitted with the new zoom factor (1.0 is 100 %) after every zoom."""
    sig_step_type_dropped = Signal(str, QPointF)
    """Emitted with a step type and the scene position where a palette drag was dropped."""
    sig_overview_changed = Signal(bool)
    """Emitted with True when the view enters overview mode and False when it leaves it."""
    sig_palette_changed = Signal()
    """Emitted after the application palette changed, for example when the system switches to dark mode."""

    def __init__(self, scene: WorkflowScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(True)
        # Panning replaces scroll bars on this unbounded canvas (see PAN_MARGIN).
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._interaction: Interaction = PanInteraction(self)
        self._space_held = False
        self._grid_visible = True
        self._overview_enabled = True
        self._overview = False
        self._overview_selection: set[str] = set()
        self._overview_cache: tuple[list[tuple[NodeItem, QRectF]], list[QLineF]] | None = None
        scene.sig_workflow_changed.connect(self._on_scene_workflow_changed)
        scene.changed.connect(self._on_scene_changed)
        self._reset_pan_range()

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

    @property
    def space_held(self) -> bool:
        """Whether the space bar is down, which turns a left-button drag into panning."""
        return self._space_held

    # -- zoom and scroll -------------------------------------------------------------------

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
        self._zoom_changed()

    def zoom_in(self) -> None:
        self.zoom_by(KEY_ZOOM_STEP)

    def zoom_out(self) -> None:
        self.zoom_by(1.0 / KEY_ZOOM_STEP)

    def reset_zoom(self) -> None:
        """Zoom to 100 %, keeping the scene point at the viewport centre still."""
        center = self.mapToScene(self.viewport().rect().center())
        self.resetTransform()
        self.centerOn(center)
        self._zoom_changed()

    def zoom_to_fit(self) -> None:
        """Zoom and scroll so every node is visible, never zooming in past 100 %."""
        self.zoom_to_rect(self.workflow_scene().items_rect())

    def zoom_to_selection(self) -> None:
        """Zoom and scroll so every selected node is visible; with nothing selected, zoom to fit."""
        rect = QRectF()
        for step_id in self.selected_step_ids():
            item = self.workflow_scene().node_item(step_id)
            if item is not None:
                rect = rect.united(item.sceneBoundingRect())
        if rect.isEmpty():
            self.zoom_to_fit()
            return
        self.zoom_to_rect(rect)

    def zoom_to_rect(self, rect: QRectF) -> None:
        """Show ``rect`` (scene units) with a margin, zooming in no further than 100 %."""
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
        self._zoom_changed()

    def pan_by(self, dx: int, dy: int) -> None:
        """Scroll the view so the content moves by ``dx``, ``dy`` viewport pixels."""
        horizontal = self.horizontalScrollBar()
        vertical = self.verticalScrollBar()
        horizontal.setValue(horizontal.value() - dx)
        vertical.setValue(vertical.value() - dy)

    def visible_scene_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()

    def ensure_scene_rect_contains(self, rect: QRectF) -> None:
        """Grow the view's scroll range, if needed, so ``rect`` (scene units) can be scrolled to."""
        if not self.sceneRect().contains(rect.adjusted(-FIT_MARGIN, -FIT_MARGIN, FIT_MARGIN, FIT_MARGIN)):
            self._reset_pan_range(rect)

    def _reset_pan_range(self, extra: QRectF | None = None) -> None:
        rect = self.workflow_scene().items_rect().united(self.visible_scene_rect())
        if extra is not None:
            rect = rect.united(extra)
        self.setSceneRect(rect.adjusted(-PAN_MARGIN, -PAN_MARGIN, PAN_MARGIN, PAN_MARGIN))

    def _zoom_changed(self) -> None:
        self._update_overview()
        self.sig_zoom_changed.emit(self.zoom())

    # -- grid ------------------------------------------------------------------------------

    @property
    def grid_visible(self) -> bool:
        return self._grid_visible

    def set_grid_visible(self, visible: bool) -> None:
        self._grid_visible = visible
        self.resetCachedContent()
        self.viewport().update()

    def drawBackground(self, painter: QPainter, rect: QRectF | QRect) -> None:
        rect = QRectF(rect)
        palette = theme.palette()
        painter.fillRect(rect, theme.canvas_background(palette))
        zoom = self.zoom()
        if not self._grid_visible or zoom < GRID_MIN_ZOOM:
            return
        # Lines, not dots: a frame draws about 150 of them in one call, where dots would be thousands.
        spacing = GRID_SIZE if zoom >= GRID_FINE_ZOOM else GRID_SIZE * 5
        lines: list[QLineF] = []
        x = math.floor(rect.left() / spacing) * spacing
        while x <= rect.right():
            lines.append(QLineF(x, rect.top(), x, rect.bottom()))
            x += spacing
        y = math.floor(rect.top() / spacing) * spacing
        while y <= rect.bottom():
            lines.append(QLineF(rect.left(), y, rect.right(), y))
            y += spacing
        pen = QPen(theme.grid_color(palette), 1.0)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.drawLines(lines)

    # -- selection by id ---------------------------------------------------------------------

    def selected_step_ids(self) -> list[str]:
        """Return the ids of the selected steps, in the scene's item order."""
        if self._overview:
            # A step removed while zoomed out (by undo, for example) leaves the selection here.
            scene = self.workflow_scene()
            self._overview_selection = {step_id for step_id in self._overview_selection if scene.node_item(step_id)}
            return sorted(self._overview_selection)
        return [item.step_id for item in self.workflow_scene().selectedItems() if isinstance(item, NodeItem)]

    def set_selected_step_ids(self, step_ids: list[str] | set[str], *, add: bool = False) -> None:
        """Select the nodes of ``step_ids`` (unknown ids are skipped); unless ``add``, deselect the rest."""
        scene = self.workflow_scene()
        if self._overview:
            known = {step_id for step_id in step_ids if scene.node_item(step_id) is not None}
            self._overview_selection = (self._overview_selection | known) if add else known
            self.viewport().update()
            scene.selectionChanged.emit()
            return
        if not add:
            scene.clearSelection()
        for step_id in step_ids:
            item = scene.node_item(step_id)
            if item is not None:
                item.setSelected(True)

    def selected_edge_keys(self) -> list[tuple[str, str]]:
        return [item.key for item in self.workflow_scene().selectedItems() if isinstance(item, EdgeItem)]

    def node_at(self, view_pos: QPoint) -> NodeItem | None:
        """Return the innermost node under ``view_pos`` (viewport pixels), in overview mode too."""
        if self._overview:
            scene_pos = self.mapToScene(view_pos)
            found: NodeItem | None = None
            for node in self.workflow_scene().node_items().values():
                inside = node.sceneBoundingRect().contains(scene_pos)
                if inside and (found is None or found.isAncestorOf(node)):
                    found = node
            return found
        for item in self.items(view_pos):
            if isinstance(item, NodeItem):
                return item
        return None

    def port_at(self, view_pos: QPoint) -> tuple[NodeItem, str] | None:
        """Return the node and port (``input`` or ``output``) under ``view_pos``, or None."""
        if self._overview:
            return None
        scene_pos = self.mapToScene(view_pos)
        probe = QRectF(scene_pos.x() - 12.0, scene_pos.y() - 12.0, 24.0, 24.0)
        for item in self.workflow_scene().items(probe):
            if isinstance(item, NodeItem):
                port = item.port_at(scene_pos)
                if port is not None:
                    return (item, port)
        return None

    def items_at(self, view_pos: QPoint) -> list[QGraphicsItem]:
        return self.items(view_pos)

    # -- overview mode -----------------------------------------------------------------------

    @property
    def overview(self) -> bool:
        """Whether the view is in overview mode (see the class docstring)."""
        return self._overview

    def set_overview_enabled(self, enabled: bool) -> None:
        """Allow or forbid overview mode. The benchmark turns it off to measure the baseline."""
        self._overview_enabled = enabled
        self._update_overview()

    def _update_overview(self) -> None:
        scene = self.workflow_scene()
        enter = (
            self._overview_enabled
            and self.zoom() < OVERVIEW_ZOOM
            and len(scene.node_items()) >= OVERVIEW_MIN_NODES
        )
        if enter == self._overview:
            if enter:
                self._hide_items()
            return
        if enter:
            self._overview_selection = set(self.selected_step_ids())
            self._overview = True
            self._hide_items()
        else:
            self._overview = False
            for item in scene.node_items().values():
                item.setVisible(True)
            for edge in scene.edge_items().values():
                edge.setVisible(True)
            self.set_selected_step_ids(self._overview_selection)
            self._overview_selection = set()
        logger.debug("overview mode %s at zoom %.3f", "on" if enter else "off", self.zoom())
        self.viewport().update()
        self.sig_overview_changed.emit(enter)

    def _hide_items(self) -> None:
        scene = self.workflow_scene()
        for item in scene.node_items().values():
            if item.parentItem() is None and item.isVisible():
                item.setVisible(False)
        for edge in scene.edge_items().values():
            if edge.isVisible():
                edge.setVisible(False)

    def refresh_overview(self) -> None:
        """Re-apply overview mode after items were added or the graph was replaced."""
        self._overview_cache = None
        self._update_overview()
        if self._overview:
            self.viewport().update()

    def _on_scene_workflow_changed(self) -> None:
        self._overview_selection = set()
        self._overview_cache = None
        self._reset_pan_range()
        self.refresh_overview()

    def drawForeground(self, painter: QPainter, rect: QRectF | QRect) -> None:
        if self._overview:
            self._paint_overview(painter, QRectF(rect))

    def _paint_overview(self, painter: QPainter, rect: QRectF) -> None:
        palette = theme.palette()
        if self._overview_cache is None:
            self._overview_cache = self._build_overview_cache()
        boxes, lines = self._overview_cache
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setPen(QPen(theme.edge_color(palette, implied=False), 0.0))
        painter.drawLines(lines)
        # Statuses are read on every paint because a run changes them without moving anything.
        by_status: dict[str, list[QRectF]] = {}
        for item, box in boxes:
            by_status.setdefault(item.status, []).append(box)
        painter.setPen(Qt.PenStyle.NoPen)
        for status, status_boxes in by_status.items():
            pending = status == "pending"
            painter.setBrush(palette.color(QPalette.ColorRole.Mid) if pending else theme.status_color(status))
            painter.drawRects(status_boxes)
        selected: list[QRectF] = []
        for step_id in self._overview_selection:
            selected_box = self._overview_box(step_id)
            if selected_box is not None and selected_box.intersects(rect):
                selected.append(selected_box)
        if selected:
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 3.0 / max(self.zoom(), 1e-3)))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRects(selected)

    def _overview_box(self, step_id: str) -> QRectF | None:
        item = self.workflow_scene().node_item(step_id)
        return None if item is None else item.mapRectToScene(QRectF(0.0, 0.0, *item.size()))

    def _build_overview_cache(self) -> tuple[list[tuple[NodeItem, QRectF]], list[QLineF]]:
        """Collect every node with its box and every edge as a straight line, in scene units."""
        scene = self.workflow_scene()
        lines = [QLineF(edge.source.output_anchor(), edge.target.input_anchor()) for edge in scene.edge_items().values()]
        boxes = [(item, item.mapRectToScene(QRectF(0.0, 0.0, *item.size()))) for item in scene.node_items().values()]
        return (boxes, lines)

    def invalidate_overview(self) -> None:
        """Collect the overview's boxes and lines again on the next paint, after nodes or edges changed.

        Hidden items do not always make the scene report a change, so the editor calls this on
        document changes.
        """
        self._overview_cache = None
        if self._overview:
            self.viewport().update()

    def _on_scene_changed(self) -> None:
        # Any item change (a move, a status) may change the overview, so it is collected again on the next paint.
        self._overview_cache = None

    # -- events ----------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            # Items read the palette when they paint, so a repaint applies a light or dark switch.
            self.resetCachedContent()
            self._overview_cache = None
            for item in self.workflow_scene().items():
                item.update()  # Also drops the pixmaps cached in the old colours.
            self.sig_palette_changed.emit()
        super().changeEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        notches = event.angleDelta().y() / 120.0
        if notches == 0:
            super().wheelEvent(event)
            return
        position = event.position()
        self.zoom_by(WHEEL_STEP**notches, (position.x(), position.y()))
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self.scene().focusItem() is not None:
            # An item that edits text (a sticky note) gets every key, space and F included.
            super().keyPressEvent(event)
            return
        if event.key() == Qt.Key.Key_F and event.modifiers() == Qt.KeyboardModifier.NoModifier:
            self.zoom_to_fit()
            event.accept()
            return
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_held = False
            self.viewport().unsetCursor()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        self._space_held = False
        super().focusOutEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if not self._interaction.mouse_pressed(event):
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if not self._interaction.mouse_moved(event):
            super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if not self._interaction.mouse_released(event):
            super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if not self._interaction.mouse_double_clicked(event):
            super().mouseDoubleClickEvent(event)

    # -- palette drops ---------------------------------------------------------------------

    @staticmethod
    def _dropped_step_type(mime: QMimeData) -> str | None:
        if not mime.hasFormat(STEP_TYPE_MIME):
            return None
        return bytes(mime.data(STEP_TYPE_MIME).data()).decode("utf-8")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_step_type(event.mimeData()) is not None:
            event.acceptProposedAction()
            return
        super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self._dropped_step_type(event.mimeData()) is not None:
            event.acceptProposedAction()
            return
        super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        step_type = self._dropped_step_type(event.mimeData())
        if step_type is None:
            super().dropEvent(event)
            return
        event.acceptProposedAction()
        self.sig_step_type_dropped.emit(step_type, self.mapToScene(event.position().toPoint()))
