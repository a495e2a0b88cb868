"""Step type icons: SVG files under resources/icons rendered once into cached pixmaps."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

logger = logging.getLogger(__name__)

# NOTE: resources/ is beside the studio package in a source checkout. Wheels do not include it yet.
RESOURCES_DIR = Path(__file__).resolve().parents[2] / "resources"
ICONS_DIR = RESOURCES_DIR / "icons"
ICON_PIXELS = 64
"""Edge length of the cached pixmaps in pixels. Nodes draw icons at 26 units, so zooming in to about 2x stays sharp."""

_cache: dict[str, QPixmap] = {}


def step_icon(step_type: str) -> QPixmap:
    """Return the icon pixmap of ``step_type``, or the ``unknown`` icon when none exists."""
    pixmap = _cache.get(step_type)
    if pixmap is None:
        pixmap = _render(step_type)
        _cache[step_type] = pixmap
    return pixmap


def _render(step_type: str) -> QPixmap:
    path = ICONS_DIR / f"{step_type}.svg"
    if not path.is_file():
        path = ICONS_DIR / "unknown.svg"
    renderer = QSvgRenderer(str(path))
    pixmap = QPixmap(ICON_PIXELS, ICON_PIXELS)
    pixmap.fill(Qt.GlobalColor.transparent)
    if not renderer.isValid():
        logger.warning("icon %s is not a valid SVG file, so no icon is drawn", path)
        return pixmap
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, ICON_PIXELS, ICON_PIXELS))
    painter.end()
    return pixmap
