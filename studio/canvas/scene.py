"""The workflow scene: projects a Workflow into node and edge items and shows step statuses."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QPointF, QRectF, Signal
from PySide6.QtWidgets import QGraphicsScene

from studio.canvas.edge_item import EdgeItem
from studio.canvas.graph import EdgeSpec, container_of, lift_to_scope, workflow_edges
from studio.canvas.layout import layered_positions
from studio.canvas.node_item import ContainerItem, NodeItem
from studio.model.workflow import AnyStep, ForEachStep, Workflow

logger = logging.getLogger(__name__)

SCENE_MARGIN = 400.0
"""Free space around the drawing, in scene units, so the user can pan past the edges."""


class WorkflowScene(QGraphicsScene):
    """A read-only projection of one workflow.

    Node items are keyed by step id and edge items by ``(source id, target id)``, so an editor can
    update single items when the model changes. The scene never changes the workflow.
    """

    sig_workflow_changed = Signal()
    """Emitted after :meth:`set_workflow` has rebuilt the items. No arguments."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._workflow: Workflow | None = None
        self._nodes: dict[str, NodeItem] = {}
        self._edges: dict[tuple[str, str], EdgeItem] = {}

    @property
    def workflow(self) -> Workflow | None:
        return self._workflow

    def node_item(self, step_id: str) -> NodeItem | None:
        return self._nodes.get(step_id)

    def node_items(self) -> dict[str, NodeItem]:
        """Return a copy of the step id to node item map, including ``for_each`` body steps."""
        return dict(self._nodes)

    def edge_item(self, source: str, target: str) -> EdgeItem | None:
        return self._edges.get((source, target))

    def edge_items(self) -> dict[tuple[str, str], EdgeItem]:
        return dict(self._edges)

    def set_workflow(self, workflow: Workflow | None) -> None:
        """Replace every item with a projection of ``workflow`` (None clears the scene)."""
        for edge in self._edges.values():
            edge.detach()
        self.clear()
        self._nodes.clear()
        self._edges.clear()
        self._workflow = workflow
        if workflow is not None:
            self._build(workflow)
        logger.debug("scene shows %d nodes and %d edges", len(self._nodes), len(self._edges))
        self.sig_workflow_changed.emit()

    def set_step_status(self, step_id: str, status: str, detail: str = "") -> None:
        """Show ``status`` on the node of ``step_id``. Unknown ids are logged and ignored."""
        item = self._nodes.get(step_id)
        if item is None:
            logger.debug("no node for step %s, so status %s is not shown", step_id, status)
            return
        item.set_status(status, detail)

    def set_pinned_steps(self, step_ids: set[str]) -> None:
        """Show the pin badge on exactly the nodes of ``step_ids``. Ids without a node are ignored."""
        for step_id, item in self._nodes.items():
            item.set_pinned(step_id in step_ids)

    def pinned_steps(self) -> set[str]:
        """Return the ids of the nodes that show the pin badge."""
        return {step_id for step_id, item in self._nodes.items() if item.pinned}

    def reset_statuses(self) -> None:
        """Set every node back to ``pending`` with no detail, as before a run."""
        for item in self._nodes.values():
            item.set_status("pending")

    def items_rect(self) -> QRectF:
        """Return the bounding rectangle of all nodes (an empty rectangle when there are none)."""
        rect = QRectF()
        for item in self._nodes.values():
            if item.parentItem() is None:
                rect = rect.united(item.sceneBoundingRect())
        return rect

    # -- building --------------------------------------------------------------------------

    def _build(self, workflow: Workflow) -> None:
        edges = workflow_edges(workflow)
        parents = container_of(workflow)
        self._build_scope(workflow.steps, None, edges, parents, container=None)
        for spec in edges:
            self._add_edge(spec)
        rect = self.items_rect()
        self.setSceneRect(rect.adjusted(-SCENE_MARGIN, -SCENE_MARGIN, SCENE_MARGIN, SCENE_MARGIN))

    def _build_scope(
        self,
        steps: list[AnyStep],
        scope_id: str | None,
        edges: list[EdgeSpec],
        parents: dict[str, str | None],
        container: ContainerItem | None,
    ) -> None:
        """Create the items of one scope, lay them out and place them (inside ``container`` if given)."""
        items: dict[str, NodeItem] = {}
        for step in steps:
            item = self._create_item(step, container)
            items[step.id] = item
            if isinstance(step, ForEachStep) and isinstance(item, ContainerItem):
                self._build_scope(step.config.steps, step.id, edges, parents, item)

        scope_edges = []
        for spec in edges:
            source = lift_to_scope(spec.source, scope_id, parents)
            target = lift_to_scope(spec.target, scope_id, parents)
            if source is not None and target is not None and source != target:
                scope_edges.append((source, target))
        sizes = {step_id: item.size() for step_id, item in items.items()}
        positions = layered_positions([step.id for step in steps], scope_edges, sizes)
        for step in steps:
            if step.position is not None:
                positions[step.id] = (step.position.x, step.position.y)
        self._place(items, positions, container)

    def _create_item(self, step: AnyStep, container: ContainerItem | None) -> NodeItem:
        item: NodeItem = ContainerItem(step, container) if isinstance(step, ForEachStep) else NodeItem(step, container)
        if container is None:
            self.addItem(item)
        self._nodes[step.id] = item
        return item

    def _place(
        self, items: dict[str, NodeItem], positions: dict[str, tuple[float, float]], container: ContainerItem | None
    ) -> None:
        if container is None:
            for step_id, item in items.items():
                item.setPos(QPointF(*positions[step_id]))
            return
        # Body positions are relative to the body's own top-left corner, shifted so the body starts at 0,0.
        # NOTE: the document format does not yet define the origin of body step positions. This code assumes that one.
        if not items:
            container.set_body_size(0.0, 0.0)
            return
        left = min(positions[step_id][0] for step_id in items)
        top = min(positions[step_id][1] for step_id in items)
        right = max(positions[step_id][0] + item.size()[0] for step_id, item in items.items())
        bottom = max(positions[step_id][1] + item.size()[1] for step_id, item in items.items())
        container.set_body_size(right - left, bottom - top)
        origin = container.body_origin()
        for step_id, item in items.items():
            x, y = positions[step_id]
            item.setPos(QPointF(origin.x() + x - left, origin.y() + y - top))

    def _add_edge(self, spec: EdgeSpec) -> None:
        source = self._nodes.get(spec.source)
        target = self._nodes.get(spec.target)
        if source is None or target is None:
            return
        edge = EdgeItem(source, target, implied=spec.implied)
        self.addItem(edge)
        self._edges[spec.key] = edge
