"""The workflow canvas: a scene that projects the model, its node and edge items, layout and view."""

from studio.canvas.edge_item import EdgeItem
from studio.canvas.node_item import ContainerItem, NodeItem
from studio.canvas.scene import WorkflowScene
from studio.canvas.theme import STEP_STATUSES
from studio.canvas.view import CanvasView

__all__ = ["STEP_STATUSES", "CanvasView", "ContainerItem", "EdgeItem", "NodeItem", "WorkflowScene"]
