"""The workflow scene: projects a Workflow (or an EditorDocument, incrementally) into node and edge items."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QPointF, QRectF, Signal, SignalInstance
from PySide6.QtWidgets import QGraphicsScene

from studio.canvas.edge_item import EdgeItem
from studio.canvas.graph import EdgeSpec, ReferenceCache, container_of, lift_to_scope, workflow_edges
from studio.canvas.layout import layered_positions
from studio.canvas.node_item import ContainerItem, NodeItem
from studio.model.workflow import AnyStep, ForEachStep, Workflow

if TYPE_CHECKING:
    from studio.canvas.document import EditorDocument

logger = logging.getLogger(__name__)

SCENE_MARGIN = 400.0
"""Free space around the drawing, in scene units, so the user can pan past the edges."""


class WorkflowScene(QGraphicsScene):
    """A projection of one workflow, or of an :class:`EditorDocument` that it follows edit by edit.

    Node items are keyed by step id and edge items by ``(source id, target id)``. With a document
    (:meth:`set_document`) the scene adds, removes, moves and updates single items on the
    document's signals and rebuilds everything only on ``sig_reset``. The scene never changes the
    workflow.
    """

    sig_workflow_changed = Signal()
    """Emitted after :meth:`set_workflow` has rebuilt the items. No arguments."""
    sig_items_updated = Signal()
    """Emitted once per document edit, undo or redo that added, removed, renamed or rebuilt items or
    changed edges (not for plain moves). No arguments."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._workflow: Workflow | None = None
        self._document: EditorDocument | None = None
        self._disconnects: list[Callable[[], None]] = []
        self._nodes: dict[str, NodeItem] = {}
        self._edges: dict[tuple[str, str], EdgeItem] = {}
        self._references = ReferenceCache()
        self._created: set[str] = set()
        """Ids of node items created since the edges were last brought up to date."""
        self._reread_targets: set[str] = set()
        self._explicit_stale = False

    @property
    def workflow(self) -> Workflow | None:
        return self._document.workflow if self._document is not None else self._workflow

    @property
    def document(self) -> EditorDocument | None:
        return self._document

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
        """Replace every item with a projection of ``workflow`` (None clears the scene).

        With a document set, pass its workflow; the scene then keeps following the document.
        """
        for edge in self._edges.values():
            edge.detach()
        for item in list(self.items()):
            if isinstance(item, NodeItem | EdgeItem) and item.parentItem() is None:
                self.removeItem(item)
        self._nodes.clear()
        self._edges.clear()
        self._reread_targets.clear()
        self._explicit_stale = False
        self._workflow = workflow
        if workflow is not None:
            self._build(workflow)
        self._created.clear()
        logger.debug("scene shows %d nodes and %d edges", len(self._nodes), len(self._edges))
        self.sig_workflow_changed.emit()

    def set_document(self, document: EditorDocument | None) -> None:
        """Follow ``document``: rebuild now and on its resets, and update single items on its other signals."""
        for disconnect in self._disconnects:
            disconnect()
        self._disconnects.clear()
        self._document = document
        if document is None:
            self.set_workflow(None)
            return
        wiring: list[tuple[SignalInstance, Callable[..., Any]]] = [
            (document.sig_reset, self._on_document_reset),
            (document.sig_steps_added, self._on_document_steps_added),
            (document.sig_steps_removed, self._on_document_steps_removed),
            (document.sig_steps_changed, self._on_document_steps_changed),
            (document.sig_steps_moved, self._on_document_steps_moved),
            (document.sig_step_renamed, self._on_document_step_renamed),
            (document.sig_edges_changed, self._on_document_edges_changed),
            (document.sig_changed, self._on_document_changed),
        ]
        for signal, slot in wiring:
            signal.connect(slot)
            self._disconnects.append(_disconnector(signal, slot))
        self.set_workflow(document.workflow)

    def model_position(self, step_id: str) -> tuple[float, float]:
        """Return the position to store for the node of ``step_id`` where it is drawn now.

        Top-level steps store their scene position. Body steps store a position relative to their
        ``for_each`` body, in the same frame that the scene reads body positions in. Raise KeyError
        when no node has that id.
        """
        item = self._nodes[step_id]
        container = item.parentItem()
        if not isinstance(container, ContainerItem):
            return (item.pos().x(), item.pos().y())
        left, top = self._body_frame(container)
        origin = container.body_origin()
        return (item.pos().x() - origin.x() + left, item.pos().y() - origin.y() + top)

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
        edges = workflow_edges(workflow, self._references)
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
        self._place(items, self._scope_positions(steps, scope_id, edges, parents, items), container)

    def _scope_positions(
        self,
        steps: list[AnyStep],
        scope_id: str | None,
        edges: list[EdgeSpec],
        parents: dict[str, str | None],
        items: dict[str, NodeItem],
    ) -> dict[str, tuple[float, float]]:
        """Return the stored position of each step, and a layered layout position for steps without one."""
        positions = {step.id: (step.position.x, step.position.y) for step in steps if step.position is not None}
        if len(positions) == len(steps):
            return positions
        scope_edges = []
        for spec in edges:
            source = lift_to_scope(spec.source, scope_id, parents)
            target = lift_to_scope(spec.target, scope_id, parents)
            if source is not None and target is not None and source != target:
                scope_edges.append((source, target))
        sizes = {step_id: item.size() for step_id, item in items.items()}
        layout = layered_positions([step.id for step in steps], scope_edges, sizes)
        layout.update(positions)
        return layout

    def _create_item(self, step: AnyStep, container: ContainerItem | None) -> NodeItem:
        item: NodeItem = ContainerItem(step, container) if isinstance(step, ForEachStep) else NodeItem(step, container)
        if container is None:
            self.addItem(item)
        self._nodes[step.id] = item
        self._created.add(step.id)
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
        container.setData(_BODY_FRAME_KEY, (left, top))
        origin = container.body_origin()
        for step_id, item in items.items():
            x, y = positions[step_id]
            item.setPos(QPointF(origin.x() + x - left, origin.y() + y - top))

    def _body_frame(self, container: ContainerItem) -> tuple[float, float]:
        frame = container.data(_BODY_FRAME_KEY)
        return (float(frame[0]), float(frame[1])) if frame else (0.0, 0.0)

    def _add_edge(self, spec: EdgeSpec) -> None:
        source = self._nodes.get(spec.source)
        target = self._nodes.get(spec.target)
        if source is None or target is None:
            return
        edge = EdgeItem(source, target, implied=spec.implied)
        self.addItem(edge)
        self._edges[spec.key] = edge

    def _remove_edge(self, key: tuple[str, str]) -> None:
        edge = self._edges.pop(key, None)
        if edge is None:
            return
        edge.detach()
        if edge.scene() is self:
            self.removeItem(edge)

    # -- following a document --------------------------------------------------------------

    def _on_document_reset(self) -> None:
        if self._document is not None:
            self.set_workflow(self._document.workflow)

    def _on_document_steps_added(self, step_ids: list[str]) -> None:
        document = self._require_document()
        containers: set[str] = set()
        for step_id in step_ids:
            if step_id in self._nodes or not document.has_step(step_id):
                continue
            slot = document.slot(step_id)
            parent = self._nodes.get(slot.container_id) if slot.container_id is not None else None
            if slot.container_id is not None and not isinstance(parent, ContainerItem):
                continue
            container = parent if isinstance(parent, ContainerItem) else None
            self._build_subtree(slot.step, container)
            if container is not None:
                containers.add(container.step_id)
        self._replace_bodies(containers)
        self._explicit_stale = True
        self._grow_scene_rect([self._nodes[step_id] for step_id in step_ids if step_id in self._nodes])

    def _build_subtree(self, step: AnyStep, container: ContainerItem | None) -> None:
        """Create the items of ``step`` (and its body), placing a top-level step at its stored position."""
        if container is None:
            self._build_scope([step], None, [], {}, None)
        else:
            item = self._create_item(step, container)
            if isinstance(step, ForEachStep) and isinstance(item, ContainerItem):
                self._build_scope(step.config.steps, step.id, [], {}, item)

    def _on_document_steps_removed(self, step_ids: list[str]) -> None:
        removed = set(step_ids)
        # Keep every item referenced until the end: dropping a container's last Python reference
        # deletes its C++ children too.
        items = [item for item in (self._nodes.pop(step_id, None) for step_id in step_ids) if item is not None]
        containers: set[str] = set()
        for item in items:
            for edge in item.edges():
                self._remove_edge(edge.key)
        for item in items:
            parent = item.parentItem()
            if isinstance(parent, ContainerItem):
                if parent.step_id in removed:
                    continue
                containers.add(parent.step_id)
            if item.scene() is self:
                self.removeItem(item)
        self._replace_bodies(containers - removed)
        self._explicit_stale = True

    def _on_document_steps_changed(self, step_ids: list[str]) -> None:
        document = self._require_document()
        for step_id in step_ids:
            item = self._nodes.get(step_id)
            if item is None or not document.has_step(step_id):
                continue
            step = document.find_step(step_id)
            if isinstance(step, ForEachStep) != isinstance(item, ContainerItem) or self._body_differs(step, item):
                self._rebuild_item(step_id, step_id)
                self._explicit_stale = True
            else:
                item.set_step(step)
                self._reread_targets.add(step_id)

    def _body_differs(self, step: AnyStep, item: NodeItem) -> bool:
        if not isinstance(step, ForEachStep):
            return False
        shown = {child.step_id for child in item.childItems() if isinstance(child, NodeItem)}
        return shown != {child.id for child in step.config.steps}

    def _on_document_steps_moved(self, step_ids: list[str]) -> None:
        document = self._require_document()
        containers: set[str] = set()
        unplaced: list[str] = []
        for step_id in step_ids:
            item = self._nodes.get(step_id)
            if item is None or not document.has_step(step_id):
                continue
            parent = item.parentItem()
            if isinstance(parent, ContainerItem):
                containers.add(parent.step_id)
                continue
            position = document.find_step(step_id).position
            if position is None:
                unplaced.append(step_id)
            elif (item.pos().x(), item.pos().y()) != (position.x, position.y):
                item.setPos(QPointF(position.x, position.y))
        if unplaced:
            self._place_by_layout(unplaced)
        self._replace_bodies(containers)
        self._grow_scene_rect([self._nodes[step_id] for step_id in step_ids if step_id in self._nodes])

    def _place_by_layout(self, step_ids: list[str]) -> None:
        """Put top-level steps that lost their stored position (an undone first move) back at their layout place.

        This lays out the whole top level, as the first build did, so it is slow for very large workflows.
        """
        workflow = self._require_document().workflow
        items = {step.id: self._nodes[step.id] for step in workflow.steps if step.id in self._nodes}
        edges = workflow_edges(workflow, self._references)
        positions = self._scope_positions(workflow.steps, None, edges, container_of(workflow), items)
        for step_id in step_ids:
            if step_id in positions:
                self._nodes[step_id].setPos(QPointF(*positions[step_id]))

    def _on_document_step_renamed(self, old_id: str, new_id: str) -> None:
        self._rebuild_item(old_id, new_id)
        self._explicit_stale = True

    def _on_document_edges_changed(self) -> None:
        self._explicit_stale = True

    def _on_document_changed(self) -> None:
        # The document emits sig_changed once per edit, after all its fine-grained signals, so the
        # edges are brought up to date once per edit. Only the edges that the edit can affect are
        # checked: explicit edges after structural changes, and implied edges into steps whose
        # config changed, into new items, and from new items to the steps that read them.
        targets, self._reread_targets = self._reread_targets, set()
        explicit, self._explicit_stale = self._explicit_stale, False
        created = {step_id for step_id in self._created if step_id in self._nodes}
        self._created = set()
        if not (explicit or targets or created):
            return
        if explicit:
            targets |= self._sync_explicit_edges()
        if created:
            targets |= created | self._readers_of(created)
        self._sync_implied_edges(targets)
        self.sig_items_updated.emit()

    def _readers_of(self, step_ids: set[str]) -> set[str]:
        """Return the ids of steps whose templates reference any of ``step_ids``."""
        readers = {
            step.id for step in self._require_document().workflow.iter_steps()
            if not self._references(step).isdisjoint(step_ids)
        }
        self._references.prune()
        return readers

    def _rebuild_item(self, old_id: str, new_id: str) -> None:
        """Replace the item of ``old_id`` (and its body items) by new items for step ``new_id`` at the same place."""
        document = self._require_document()
        item = self._nodes.get(old_id)
        if item is None or not document.has_step(new_id):
            return
        position = item.pos()
        parent = item.parentItem()
        status, detail, pinned = item.status, item.detail, item.pinned
        doomed = [old_id] + [
            step_id for step_id, node in self._nodes.items() if node is not item and item.isAncestorOf(node)
        ]
        # The new items take over the selection, so the inspector keeps showing a renamed step.
        selected = [new_id if step_id == old_id else step_id for step_id in doomed if self._nodes[step_id].isSelected()]
        for step_id in doomed:
            for edge in self._nodes[step_id].edges():
                self._remove_edge(edge.key)
            del self._nodes[step_id]
        if item.scene() is self:
            self.removeItem(item)
        container = parent if isinstance(parent, ContainerItem) else None
        self._build_subtree(document.find_step(new_id), container)
        fresh = self._nodes[new_id]
        fresh.setPos(position)
        fresh.set_status(status, detail)
        fresh.set_pinned(pinned)
        if container is not None:
            self._replace_bodies({container.step_id})
        for step_id in selected:
            node = self._nodes.get(step_id)
            if node is not None:
                node.setSelected(True)

    def _replace_bodies(self, container_ids: set[str]) -> None:
        """Lay out the bodies of the named ``for_each`` items again from the document (after adds, moves, removals)."""
        document = self._require_document()
        for container_id in container_ids:
            container = self._nodes.get(container_id)
            if not isinstance(container, ContainerItem) or not document.has_step(container_id):
                continue
            step = document.find_step(container_id)
            if not isinstance(step, ForEachStep):
                continue
            items = {child.id: self._nodes[child.id] for child in step.config.steps if child.id in self._nodes}
            positions = self._scope_positions(step.config.steps, container_id, [], {}, items)
            self._place(items, positions, container)

    def _sync_explicit_edges(self) -> set[str]:
        """Match explicit edge items to the document's edge lists; return the targets of removed edges.

        An edge that stops being explicit may still be implied by a template, so the caller
        rechecks the implied edges into the returned targets.
        """
        workflow = self._require_document().workflow
        edge_lists = [workflow.edges] + [
            step.config.edges for step in workflow.iter_steps() if isinstance(step, ForEachStep)
        ]
        wanted = {
            (edge.source, edge.target) for edges in edge_lists for edge in edges
            if edge.source in self._nodes and edge.target in self._nodes
        }
        shown = {key for key, edge in self._edges.items() if not edge.implied}
        for key in shown - wanted:
            self._remove_edge(key)
        for key in wanted - shown:
            self._remove_edge(key)
            self._add_edge(EdgeSpec(key[0], key[1], implied=False))
        return {target for _source, target in shown - wanted}

    def _sync_implied_edges(self, target_ids: set[str]) -> None:
        """Update the implied edges into steps whose config changed, when nothing else changed.

        A config edit changes only which results the step reads, so only its incoming implied
        edges can change. This keeps typing in a field fast in large workflows.
        """
        document = self._require_document()
        for target_id in target_ids:
            target = self._nodes.get(target_id)
            if target is None or not document.has_step(target_id):
                continue
            enclosing = self._enclosing_ids(target_id)
            wanted = {
                source for source in self._references(document.find_step(target_id))
                if source != target_id and source not in enclosing and source in self._nodes
            }
            for edge in target.edges():
                if edge.target is target and edge.implied and edge.source.step_id not in wanted:
                    self._remove_edge(edge.key)
            for source in wanted:
                if (source, target_id) not in self._edges:
                    self._add_edge(EdgeSpec(source, target_id, implied=True))

    def _enclosing_ids(self, step_id: str) -> set[str]:
        document = self._require_document()
        found: set[str] = set()
        container = document.slot(step_id).container_id
        while container is not None and container not in found:
            found.add(container)
            container = document.slot(container).container_id
        return found

    def _grow_scene_rect(self, items: list[NodeItem]) -> None:
        """Grow the scene rectangle so the user can still pan to ``items`` and past them."""
        scene_rect = self.sceneRect()
        for item in items:
            rect = item.sceneBoundingRect().adjusted(-SCENE_MARGIN, -SCENE_MARGIN, SCENE_MARGIN, SCENE_MARGIN)
            if not scene_rect.contains(rect):
                scene_rect = scene_rect.united(rect)
        if scene_rect != self.sceneRect():
            self.setSceneRect(scene_rect)

    def _require_document(self) -> EditorDocument:
        assert self._document is not None, "document signals arrive only while a document is set"
        return self._document


def _disconnector(signal: SignalInstance, slot: Callable[..., Any]) -> Callable[[], None]:
    def disconnect() -> None:
        signal.disconnect(slot)

    return disconnect


_BODY_FRAME_KEY = 0x5C0
"""QGraphicsItem data key under which a container stores the (left, top) body frame of its last layout."""
