"""Graphics item for a dependency: a cubic curve with an arrowhead, dashed when only implied."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QPainter, QPainterPath, QPainterPathStroker, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from studio.canvas import theme
from studio.canvas.node_item import PLAIN_ZOOM as PLAIN_ZOOM  # re-exported: the benchmark switches it off here too
from studio.canvas.node_item import PORT_RADIUS, NodeItem

ARROW_LENGTH = 10.0
ARROW_HALF_WIDTH = 5.0
WIDE_PEN_ZOOM = 1.25
"""From this zoom factor on, edges are drawn 1.6 units wide. Below it they are one pixel wide."""


class EdgeItem(QGraphicsItem):
    """An edge from ``source`` to ``target`` node items, keyed by their step ids.

    The item registers itself with both nodes, which call :meth:`update_path` when they move.
    :meth:`detach` undoes that before the item is removed from the scene.
    """

    def __init__(self, source: NodeItem, target: NodeItem, *, implied: bool) -> None:
        super().__init__()
        self._source = source
        self._target = target
        self._implied = implied
        self._path = QPainterPath()
        self._arrow = QPolygonF()
        self.setZValue(1.0)
        # Explicit edges can be selected and deleted. Implied ones come from a template and are changed there.
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable, not implied)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton if implied else Qt.MouseButton.LeftButton)
        source.add_edge(self)
        target.add_edge(self)
        kind = "implied by a template reference" if implied else "explicit edge"
        self.setToolTip(f"{source.step_id} → {target.step_id} ({kind})")
        self.update_path()

    @property
    def key(self) -> tuple[str, str]:
        return (self._source.step_id, self._target.step_id)

    @property
    def implied(self) -> bool:
        return self._implied

    @property
    def source(self) -> NodeItem:
        return self._source

    @property
    def target(self) -> NodeItem:
        return self._target

    def detach(self) -> None:
        """Unregister from both nodes, so they stop updating this item."""
        self._source.remove_edge(self)
        self._target.remove_edge(self)

    def path(self) -> QPainterPath:
        """Return the curve in scene coordinates, without the arrowhead."""
        return QPainterPath(self._path)

    def update_path(self) -> None:
        """Recompute the curve from the current node anchors."""
        start = self._source.output_anchor()
        # The arrow's tip touches the input port's circle instead of hiding under it.
        anchor = self._target.input_anchor()
        end = QPointF(anchor.x() - PORT_RADIUS, anchor.y())
        tip_base = QPointF(end.x() - ARROW_LENGTH, end.y())
        reach = max(40.0, abs(tip_base.x() - start.x()) / 2.0)
        path = QPainterPath(start)
        path.cubicTo(QPointF(start.x() + reach, start.y()), QPointF(tip_base.x() - reach, tip_base.y()), tip_base)
        self.prepareGeometryChange()
        self._path = path
        self._arrow = QPolygonF([
            end,
            QPointF(tip_base.x(), tip_base.y() - ARROW_HALF_WIDTH),
            QPointF(tip_base.x(), tip_base.y() + ARROW_HALF_WIDTH),
        ])
        self.update()

    def boundingRect(self) -> QRectF:
        margin = ARROW_HALF_WIDTH + 2.0
        return self._path.boundingRect().united(self._arrow.boundingRect()).adjusted(-margin, -margin, margin, margin)

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(8.0)
        return stroker.createStroke(self._path)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        color = theme.edge_color(theme.palette(), implied=self._implied, selected=self.isSelected())
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod < PLAIN_ZOOM:
            # A straight thin line without arrowhead or antialiasing is enough at this size.
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            painter.setPen(QPen(color, 0.0))
            painter.drawLine(self._path.pointAtPercent(0.0), self._arrow.at(0))
            return
        if self.isSelected():
            pen = QPen(color, 2.6)
        elif lod >= WIDE_PEN_ZOOM:
            pen = QPen(color, 1.6)
        else:
            # A one-pixel cosmetic pen takes Qt's fast antialiased line path. Wider pens are stroked as
            # filled outlines, several times slower, and hundreds of edges can be in view.
            pen = QPen(color, 1.0)
            pen.setCosmetic(True)
        if self._implied:
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self._path)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(color)
        painter.drawPolygon(self._arrow)
