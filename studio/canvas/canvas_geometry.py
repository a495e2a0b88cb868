"""Model and scene coordinates of steps on the canvas: positions, boxes, scopes and the edges to lay out."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QPointF, QRectF

from studio.canvas.arrange import Rect
from studio.canvas.graph import container_of, lift_to_scope, workflow_edges
from studio.canvas.node_item import ContainerItem, NodeItem
from studio.canvas.scene import WorkflowScene
from studio.model.workflow import Workflow


def step_rects(scene: WorkflowScene, step_ids: Iterable[str]) -> dict[str, Rect]:
    """Return the model-coordinate box of each step that has a node (others are skipped)."""
    rects: dict[str, Rect] = {}
    for step_id in step_ids:
        item = scene.node_item(step_id)
        if item is not None:
            x, y = scene.model_position(step_id)
            width, height = item.size()
            rects[step_id] = (x, y, width, height)
    return rects


def container_at(scene: WorkflowScene, scene_pos: QPointF) -> ContainerItem | None:
    """Return the innermost ``for_each`` container whose body area contains ``scene_pos``, or None."""
    found: ContainerItem | None = None
    for item in scene.items(scene_pos):
        if isinstance(item, ContainerItem):
            local = item.mapFromScene(scene_pos)
            if local.y() >= item.body_origin().y() and (found is None or found.isAncestorOf(item)):
                found = item
    return found


def scope_edges(workflow: Workflow, scope_id: str | None) -> list[tuple[str, str]]:
    """Return the drawn edges (explicit and implied) between steps of one scope, lifted to that scope."""
    parents = container_of(workflow)
    result: list[tuple[str, str]] = []
    for spec in workflow_edges(workflow):
        source = lift_to_scope(spec.source, scope_id, parents)
        target = lift_to_scope(spec.target, scope_id, parents)
        if source is not None and target is not None and source != target:
            result.append((source, target))
    return result


def scopes(workflow: Workflow) -> dict[str | None, list[str]]:
    """Map each scope (None for the top level, else a ``for_each`` id) to its step ids."""
    result: dict[str | None, list[str]] = {}
    for step_id, container_id in container_of(workflow).items():
        result.setdefault(container_id, []).append(step_id)
    return result


def box_of(item: NodeItem) -> QRectF:
    """Return the node's box (without ports and badges) in scene coordinates."""
    return item.mapRectToScene(QRectF(0.0, 0.0, *item.size()))
