"""Align, distribute, snap and auto-layout arithmetic on node rectangles (no Qt, so it is testable alone)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from studio.canvas.layout import layered_positions

logger = logging.getLogger(__name__)

Rect = tuple[float, float, float, float]
"""A node's box as (x, y, width, height) in scene units, (x, y) being the top-left corner."""
Positions = dict[str, tuple[float, float]]

ALIGN_MODES: tuple[str, ...] = ("left", "right", "top", "bottom", "center_horizontal", "center_vertical")
"""``center_horizontal`` lines the centres up on one vertical line, ``center_vertical`` on one horizontal line."""
DISTRIBUTE_AXES: tuple[str, ...] = ("horizontal", "vertical")
GRID_SIZE = 20.0
"""Spacing of the snap grid, in scene units."""


def align(rects: Mapping[str, Rect], mode: str) -> Positions:
    """Return new top-left corners that line the boxes up along the edge or centre named by ``mode``.

    The reference is the outermost box in that direction (the leftmost left edge for ``left``),
    or the centre of the boxes' bounding box for the centre modes.
    """
    if mode not in ALIGN_MODES:
        raise ValueError(f"unknown align mode '{mode}'. Expected one of: {', '.join(ALIGN_MODES)}")
    if not rects:
        return {}
    left = min(x for x, _y, _w, _h in rects.values())
    top = min(y for _x, y, _w, _h in rects.values())
    right = max(x + w for x, _y, w, _h in rects.values())
    bottom = max(y + h for _x, y, _w, h in rects.values())
    result: Positions = {}
    for key, (x, y, width, height) in rects.items():
        if mode == "left":
            result[key] = (left, y)
        elif mode == "right":
            result[key] = (right - width, y)
        elif mode == "top":
            result[key] = (x, top)
        elif mode == "bottom":
            result[key] = (x, bottom - height)
        elif mode == "center_horizontal":
            result[key] = ((left + right) / 2.0 - width / 2.0, y)
        else:
            result[key] = (x, (top + bottom) / 2.0 - height / 2.0)
    return result


def distribute(rects: Mapping[str, Rect], axis: str) -> Positions:
    """Return new top-left corners that leave equal gaps between the boxes along ``axis``.

    The first and last boxes along the axis stay where they are. Fewer than three boxes do not move.
    """
    if axis not in DISTRIBUTE_AXES:
        raise ValueError(f"unknown distribute axis '{axis}'. Expected one of: {', '.join(DISTRIBUTE_AXES)}")
    horizontal = axis == "horizontal"
    ordered = sorted(rects.items(), key=lambda item: item[1][0] if horizontal else item[1][1])
    if len(ordered) < 3:
        return {key: (x, y) for key, (x, y, _w, _h) in ordered}
    first = ordered[0][1]
    last = ordered[-1][1]
    start = first[0] if horizontal else first[1]
    end = (last[0] + last[2]) if horizontal else (last[1] + last[3])
    total = sum(rect[2] if horizontal else rect[3] for _key, rect in ordered)
    gap = (end - start - total) / (len(ordered) - 1)
    result: Positions = {}
    cursor = start
    for key, (x, y, width, height) in ordered:
        result[key] = (cursor, y) if horizontal else (x, cursor)
        cursor += (width if horizontal else height) + gap
    return result


def snap(value: float, grid: float = GRID_SIZE) -> float:
    """Round ``value`` to the nearest multiple of ``grid``."""
    return round(value / grid) * grid


def snap_position(position: tuple[float, float], grid: float = GRID_SIZE) -> tuple[float, float]:
    return (snap(position[0], grid), snap(position[1], grid))


def auto_layout(
    rects: Mapping[str, Rect],
    edges: Iterable[tuple[str, str]],
    pinned: Iterable[str] = (),
) -> Positions:
    """Return a layered left-to-right layout of the boxes, anchored at the boxes' current top-left corner.

    ``edges`` among the keys of ``rects`` define the layers. Pinned boxes keep their place and are
    left out of the result, and the rest are laid out as if the pinned ones were absent.
    """
    pinned_ids = set(pinned)
    movable = [key for key in rects if key not in pinned_ids]
    if not movable:
        return {}
    sizes = {key: (rects[key][2], rects[key][3]) for key in movable}
    laid_out = layered_positions(movable, edges, sizes)
    anchor_x = min(rects[key][0] for key in movable)
    anchor_y = min(rects[key][1] for key in movable)
    layout_x = min(x for x, _y in laid_out.values())
    layout_y = min(y for _x, y in laid_out.values())
    result = {key: (x - layout_x + anchor_x, y - layout_y + anchor_y) for key, (x, y) in laid_out.items()}
    logger.debug("auto-layout placed %d boxes and kept %d pinned", len(result), len(rects) - len(movable))
    return result
