"""Graphics items for steps: a rounded box per step and a container box for ``for_each`` bodies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsObject, QStyleOptionGraphicsItem, QWidget

from studio.canvas import theme
from studio.canvas.icons import step_icon
from studio.model.workflow import AnyStep

if TYPE_CHECKING:
    from studio.canvas.edge_item import EdgeItem

PIN_TOOLTIP = "output pinned: test runs use it instead of running the step"
PIN_BADGE_TEXT = "pinned"
"""Badge text. The badge draws its own pin dot, because an emoji needs a font that many Linux systems lack."""
DETAIL_ZOOM = 0.4
"""Below this zoom factor nodes paint a summary (icon and an enlarged title) instead of every detail."""
PLAIN_ZOOM = 0.15
"""Below this zoom factor nodes paint plain boxes without text or icons, which keeps large graphs fast."""
SUMMARY_TEXT_PIXELS = 9.0
"""Height of the title on screen when a node paints its summary, in device-independent pixels."""
PORT_RADIUS = 6.0
"""Radius of the input and output port circles, in scene units."""
PORT_HIT_RADIUS = 12.0
"""Distance from a port centre within which a press or a drop counts as on the port, in scene units."""
PORT_INPUT = "input"
PORT_OUTPUT = "output"


_header_fonts: dict[str, tuple[QFont, QFont]] = {}


def header_fonts(base: QFont) -> tuple[QFont, QFont]:
    """Return the title font (bold, at least 9 pt) and the smaller label font derived from ``base``.

    They are cached by the base font's key, because building them on every paint showed up in
    profiles of large graphs.
    """
    key = base.key()
    fonts = _header_fonts.get(key)
    if fonts is None:
        title_font = QFont(base)
        title_font.setBold(True)
        title_font.setPointSizeF(max(title_font.pointSizeF(), 9.0))
        small_font = QFont(title_font)
        small_font.setBold(False)
        small_font.setPointSizeF(title_font.pointSizeF() * 0.85)
        fonts = (title_font, small_font)
        _header_fonts[key] = fonts
    return fonts


class NodeItem(QGraphicsObject):
    """One step on the canvas, keyed by its step id.

    The item only projects the model: it copies what it draws from the step in :meth:`set_step`
    and never changes the step. :meth:`setPos` updates the connected edges, and a container's
    :meth:`setPos` also updates the edges of its body nodes.
    """

    WIDTH = 220.0
    HEIGHT = 78.0
    RADIUS = 9.0
    ICON_SIZE = 26.0
    MARGIN = 10.0

    def __init__(self, step: AnyStep, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._step_id = step.id
        self._step_type = step.type
        self._title = step.title
        self._status = "pending"
        self._detail = ""
        self._pinned = False
        self._base_tooltip = ""
        self._problem_severity: str | None = None
        self._problem_count = 0
        self._problem_tooltip = ""
        self._highlighted_port: str | None = None
        self._elided_title: tuple[tuple[str, str, float], str] = (("", "", 0.0), "")
        self._size = (self.WIDTH, self.HEIGHT)
        self._edges: list[EdgeItem] = []
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        # A node repaints from a pixmap until it changes or the zoom does: at 1:1 that cuts a frame of a
        # large graph to less than half (bench/bench_canvas.py). Moves keep the pixmap.
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.setZValue(2.0)
        self.set_step(step)

    # -- model projection ------------------------------------------------------------------

    @property
    def step_id(self) -> str:
        return self._step_id

    @property
    def step_type(self) -> str:
        return self._step_type

    @property
    def title(self) -> str:
        return self._title

    @property
    def status(self) -> str:
        return self._status

    @property
    def detail(self) -> str:
        """Short status text shown beside the badge, such as a duration or an item count."""
        return self._detail

    def set_step(self, step: AnyStep) -> None:
        """Copy the displayed fields of ``step`` (which must keep this item's id) and repaint."""
        if step.id != self._step_id:
            raise ValueError(f"node item '{self._step_id}' cannot show step '{step.id}'. Create a new item instead")
        self._step_type = step.type
        self._title = step.title
        tooltip = f"{step.title}\nid: {step.id}\ntype: {step.type}"
        if step.description:
            tooltip += f"\n\n{step.description}"
        self._base_tooltip = tooltip
        self._update_tooltip()
        self.update()

    @property
    def pinned(self) -> bool:
        """Whether the workflow stores a pinned output for this step, which test runs use."""
        return self._pinned

    def set_pinned(self, pinned: bool) -> None:
        """Show or hide the pin badge and its tooltip line."""
        if pinned == self._pinned:
            return
        self._pinned = pinned
        self._update_tooltip()
        self.update()

    def _update_tooltip(self) -> None:
        pin_line = f"\n\n{PIN_BADGE_TEXT}: {PIN_TOOLTIP}" if self._pinned else ""
        problem_lines = f"\n\n{self._problem_tooltip}" if self._problem_severity and self._problem_tooltip else ""
        self.setToolTip(self._base_tooltip + pin_line + problem_lines)

    @property
    def problems(self) -> tuple[str | None, int]:
        """The shown problem severity (None when there are none) and problem count."""
        return (self._problem_severity, self._problem_count)

    def set_problems(self, severity: str | None, count: int, tooltip: str) -> None:
        """Show a badge with ``count`` validation problems, coloured by the worst ``severity``.

        ``severity`` is one of :data:`theme.PROBLEM_SEVERITIES`, or None (or ``count`` 0) to hide the
        badge. ``tooltip`` lists the problems and is added to the node's tooltip.
        """
        if severity is not None and severity not in theme.PROBLEM_SEVERITIES:
            raise ValueError(
                f"unknown problem severity '{severity}'. Expected one of: {', '.join(theme.PROBLEM_SEVERITIES)}"
            )
        if count < 0:
            raise ValueError(f"problem count {count} is negative. Pass 0 to hide the badge")
        if severity is None or count == 0:
            severity, count, tooltip = None, 0, ""
        if (severity, count, tooltip) == (self._problem_severity, self._problem_count, self._problem_tooltip):
            return
        self._problem_severity = severity
        self._problem_count = count
        self._problem_tooltip = tooltip
        self._update_tooltip()
        self.update()

    def set_status(self, status: str, detail: str = "") -> None:
        """Show ``status`` (one of :data:`theme.STEP_STATUSES`) with an optional detail text."""
        if status not in theme.STEP_STATUSES:
            raise ValueError(f"unknown step status '{status}'. Expected one of: {', '.join(theme.STEP_STATUSES)}")
        if (status, detail) == (self._status, self._detail):
            return
        self._status = status
        self._detail = detail
        self.update()

    # -- edges -----------------------------------------------------------------------------

    def add_edge(self, edge: EdgeItem) -> None:
        """Register ``edge`` so it follows this node's moves."""
        if edge not in self._edges:
            self._edges.append(edge)

    def remove_edge(self, edge: EdgeItem) -> None:
        if edge in self._edges:
            self._edges.remove(edge)

    def edges(self) -> list[EdgeItem]:
        return list(self._edges)

    def output_anchor(self) -> QPointF:
        """Return the scene point where outgoing edges start: the middle of the right side."""
        width, height = self._size
        return self.mapToScene(QPointF(width, self._anchor_y(height)))

    def input_anchor(self) -> QPointF:
        """Return the scene point where incoming edges end: the middle of the left side."""
        return self.mapToScene(QPointF(0.0, self._anchor_y(self._size[1])))

    def _anchor_y(self, height: float) -> float:
        return height / 2.0

    def port_center(self, port: str) -> QPointF:
        """Return the scene centre of ``port`` (:data:`PORT_INPUT` or :data:`PORT_OUTPUT`)."""
        return self.input_anchor() if port == PORT_INPUT else self.output_anchor()

    def port_at(self, scene_pos: QPointF) -> str | None:
        """Return the port within :data:`PORT_HIT_RADIUS` of ``scene_pos``, or None."""
        for port in (PORT_OUTPUT, PORT_INPUT):
            delta = self.port_center(port) - scene_pos
            if delta.x() * delta.x() + delta.y() * delta.y() <= PORT_HIT_RADIUS * PORT_HIT_RADIUS:
                return port
        return None

    def set_highlighted_port(self, port: str | None) -> None:
        """Draw ``port`` in the highlight colour (None for no port), to show where a drag connects."""
        if port != self._highlighted_port:
            self._highlighted_port = port
            self.update()

    def setPos(self, *args: Any) -> None:
        """Move the item (``setPos(point)`` or ``setPos(x, y)``) and redraw the edges of it and its body nodes.

        Edges follow through this method instead of ``itemChange`` notifications, because every
        notification is a call into Python and a scene of thousands of nodes gets several per node
        while it is built. So move nodes with ``setPos``, not ``moveBy``, ``setX`` or ``setY``.
        """
        super().setPos(*args)
        self.update_edges()

    def update_edges(self) -> None:
        """Recompute the edges of this node and of the nodes inside it (a ``for_each`` body)."""
        for edge in self._edges:
            edge.update_path()

    # -- geometry and painting -------------------------------------------------------------

    def size(self) -> tuple[float, float]:
        return self._size

    def boundingRect(self) -> QRectF:
        # Ports and the problems badge stick out of the box by up to 10 units.
        width, height = self._size
        return QRectF(-10.0, -10.0, width + 20.0, height + 20.0)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRoundedRect(self._box(), self.RADIUS, self.RADIUS)
        return path

    def _box(self) -> QRectF:
        return QRectF(0.0, 0.0, *self._size)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        palette = theme.palette()
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        if lod < min(PLAIN_ZOOM, DETAIL_ZOOM):
            # Plain boxes without antialiasing: at this size rounded corners and text are invisible anyway.
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            self._paint_cheap(painter, palette)
            return
        if lod < DETAIL_ZOOM:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            self._paint_summary(painter, palette, lod)
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        self._paint_frame(painter, palette)
        self._paint_header(painter, palette, QRectF(0.0, 0.0, self._size[0], self.HEIGHT))
        self._paint_ports(painter, palette)
        if self._problem_severity is not None:
            self._paint_problems(painter)

    def _paint_ports(self, painter: QPainter, palette: QPalette) -> None:
        outline = QPen(theme.node_fill(palette), 1.5)
        for port in (PORT_INPUT, PORT_OUTPUT):
            center = self.mapFromScene(self.port_center(port))
            painter.setPen(outline)
            painter.setBrush(theme.port_color(palette, highlighted=port == self._highlighted_port))
            painter.drawEllipse(center, PORT_RADIUS, PORT_RADIUS)

    def _paint_problems(self, painter: QPainter) -> None:
        """Draw the problem count in a circle on the top-right corner, in the severity colour."""
        severity = self._problem_severity or "error"
        radius = 9.0
        center = QPointF(self._size[0] - 2.0, 2.0)
        painter.setPen(QPen(QColor("#ffffff"), 1.5))
        painter.setBrush(theme.problem_color(severity))
        painter.drawEllipse(center, radius, radius)
        font = QFont(painter.font())
        font.setBold(True)
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        painter.setFont(font)
        text = str(self._problem_count) if self._problem_count < 100 else "99+"
        painter.drawText(QRectF(center.x() - radius, center.y() - radius, 2 * radius, 2 * radius),
                         Qt.AlignmentFlag.AlignCenter, text)

    def _paint_summary(self, painter: QPainter, palette: QPalette, lod: float) -> None:
        """Draw the frame, a large icon and the title in a font that stays readable when zoomed out."""
        self._paint_frame(painter, palette)
        height = self.HEIGHT
        icon_size = self.ICON_SIZE * 1.4
        icon_rect = QRectF(self.MARGIN, (height - icon_size) / 2.0, icon_size, icon_size)
        icon = step_icon(self._step_type)
        painter.drawPixmap(icon_rect, icon, QRectF(icon.rect()))
        font = QFont(painter.font())
        font.setBold(True)
        font.setPixelSize(max(1, round(SUMMARY_TEXT_PIXELS / lod)))
        painter.setFont(font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        left = icon_rect.right() + self.MARGIN / 2.0
        text_rect = QRectF(left, 2.0, self._size[0] - left - self.MARGIN / 2.0, height - 4.0)
        # From about 30 % zoom a second line fits, so long titles wrap there instead of being cut to a few letters.
        flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter | Qt.TextFlag.TextWordWrap
        painter.drawText(text_rect, int(flags), self._title)

    def _paint_cheap(self, painter: QPainter, palette: QPalette) -> None:
        painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 8.0) if self.isSelected() else Qt.PenStyle.NoPen)
        color = theme.status_color(self._status) if self._status != "pending" else palette.color(QPalette.ColorRole.Mid)
        painter.setBrush(color)
        painter.drawRect(self._box())

    def _frame_pen(self, palette: QPalette) -> QPen:
        if self.isSelected():
            return QPen(palette.color(QPalette.ColorRole.Highlight), 2.5)
        if self._status == "pending":
            return QPen(palette.color(QPalette.ColorRole.Mid), 1.2)
        return QPen(theme.status_color(self._status), 2.0)

    def _paint_frame(self, painter: QPainter, palette: QPalette) -> None:
        painter.setPen(self._frame_pen(palette))
        painter.setBrush(theme.node_fill(palette))
        painter.drawRoundedRect(self._box(), self.RADIUS, self.RADIUS)

    def _paint_header(self, painter: QPainter, palette: QPalette, area: QRectF) -> None:
        """Draw icon, title, type label, status badge and detail inside ``area`` (item coordinates)."""
        margin = self.MARGIN
        icon_rect = QRectF(area.left() + margin, area.top() + margin, self.ICON_SIZE, self.ICON_SIZE)
        painter.drawPixmap(icon_rect, step_icon(self._step_type), QRectF(step_icon(self._step_type).rect()))

        text_left = icon_rect.right() + 8.0
        text_width = area.right() - margin - text_left
        title_font, small_font = header_fonts(painter.font())
        painter.setFont(title_font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        elided_key = (self._title, title_font.key(), text_width)
        if self._elided_title[0] != elided_key:
            elided = QFontMetricsF(title_font).elidedText(self._title, Qt.TextElideMode.ElideRight, text_width)
            self._elided_title = (elided_key, elided)
        title_rect = QRectF(text_left, area.top() + margin - 2.0, text_width, 18.0)
        painter.drawText(title_rect, Qt.AlignmentFlag.AlignLeft, self._elided_title[1])

        painter.setFont(small_font)
        painter.setPen(theme.secondary_text(palette))
        painter.drawText(QRectF(text_left, area.top() + margin + 16.0, text_width, 16.0), Qt.AlignmentFlag.AlignLeft,
                         self._step_type)

        self._paint_badge(painter, palette, small_font, QPointF(area.left() + margin, area.bottom() - margin - 18.0))
        if self._pinned:
            self._paint_pin(painter, palette, small_font, area)

    def _paint_pin(self, painter: QPainter, palette: QPalette, font: QFont, area: QRectF) -> None:
        """Draw the pin badge at the right end of the type label's line, clear of the title."""
        metrics = QFontMetricsF(font)
        width = metrics.horizontalAdvance(PIN_BADGE_TEXT) + 22.0
        badge = QRectF(area.right() - self.MARGIN - width, area.top() + self.MARGIN + 16.0, width, 16.0)
        highlight = palette.color(QPalette.ColorRole.Highlight)
        painter.setPen(QPen(highlight, 1.2))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(badge, 8.0, 8.0)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(highlight)
        painter.drawEllipse(QPointF(badge.left() + 9.0, badge.center().y()), 3.0, 3.0)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        painter.setFont(font)
        painter.drawText(badge.adjusted(14.0, 0.0, 0.0, 0.0), Qt.AlignmentFlag.AlignCenter, PIN_BADGE_TEXT)

    def _paint_badge(self, painter: QPainter, palette: QPalette, font: QFont, top_left: QPointF) -> None:
        metrics = QFontMetricsF(font)
        badge = QRectF(top_left, QPointF(top_left.x() + metrics.horizontalAdvance(self._status) + 14.0,
                                         top_left.y() + 18.0))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(theme.status_color(self._status))
        painter.drawRoundedRect(badge, 9.0, 9.0)
        painter.setPen(QColor("#ffffff"))
        painter.setFont(font)
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, self._status)
        if self._detail:
            detail_left = badge.right() + 8.0
            detail_width = self._size[0] - self.MARGIN - detail_left
            painter.setPen(theme.secondary_text(palette))
            text = metrics.elidedText(self._detail, Qt.TextElideMode.ElideRight, detail_width)
            painter.drawText(QRectF(detail_left, badge.top(), detail_width, badge.height()),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)


class ContainerItem(NodeItem):
    """A ``for_each`` step drawn as a box whose body steps are child items below its header."""

    PADDING = 18.0

    def __init__(self, step: AnyStep, parent: QGraphicsItem | None = None) -> None:
        super().__init__(step, parent)
        # A container can be large and is mostly empty body area, so it is not kept as a pixmap.
        self.setCacheMode(QGraphicsItem.CacheMode.NoCache)
        self.setZValue(0.0)

    def set_body_size(self, width: float, height: float) -> None:
        """Resize the box so a body of ``width`` x ``height`` fits below the header with padding."""
        self.prepareGeometryChange()
        self._size = (
            max(self.WIDTH, width + 2.0 * self.PADDING),
            self.HEIGHT + height + self.PADDING,
        )
        self.update()
        for edge in self._edges:
            edge.update_path()

    def update_edges(self) -> None:
        super().update_edges()
        for child in self.childItems():
            if isinstance(child, NodeItem):
                child.update_edges()

    def body_origin(self) -> QPointF:
        """Return where the body's top-left corner goes, in this item's coordinates."""
        return QPointF(self.PADDING, self.HEIGHT)

    def _anchor_y(self, height: float) -> float:
        # Edges attach at the header so they do not cross the body.
        return self.HEIGHT / 2.0

    def _paint_cheap(self, painter: QPainter, palette: QPalette) -> None:
        # An outline only, so the body's boxes stay visible inside.
        color = theme.status_color(self._status) if self._status != "pending" else palette.color(QPalette.ColorRole.Mid)
        painter.setPen(QPen(color, 0.0))
        painter.setBrush(theme.container_fill(palette))
        painter.drawRect(self._box())

    def _paint_frame(self, painter: QPainter, palette: QPalette) -> None:
        pen = self._frame_pen(palette)
        pen.setStyle(Qt.PenStyle.DashLine if self._status == "pending" else Qt.PenStyle.SolidLine)
        painter.setPen(pen)
        painter.setBrush(theme.container_fill(palette))
        painter.drawRoundedRect(self._box(), self.RADIUS + 3.0, self.RADIUS + 3.0)
        divider = QPen(palette.color(QPalette.ColorRole.Mid), 1.0, Qt.PenStyle.DotLine)
        painter.setPen(divider)
        divider_y = self.HEIGHT - 4.0
        painter.drawLine(QPointF(self.MARGIN, divider_y), QPointF(self._size[0] - self.MARGIN, divider_y))
