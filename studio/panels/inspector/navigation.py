"""Selecting a step on a window's canvas, for panels that jump to a step (Problems, Usages)."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def select_step(window: Any, step_id: str) -> bool:
    """Select only the node of ``step_id`` on ``window.scene`` and centre ``window.view`` on it."""
    scene = window.scene
    item = scene.node_item(step_id)
    if item is None:
        logger.debug("no node for step %s, so it cannot be selected", step_id)
        return False
    view = getattr(window, "view", None)
    if view is not None and hasattr(view, "set_selected_step_ids"):
        view.set_selected_step_ids([step_id])
    else:
        scene.clearSelection()
        item.setSelected(True)
    if view is not None:
        view.centerOn(item)
    return True
