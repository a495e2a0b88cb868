"""A minimal editor window for the inspector and live validation tests: document, scene, view, no store."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QMainWindow

from studio.canvas.document import EditorDocument
from studio.canvas.scene import WorkflowScene
from studio.canvas.view import CanvasView
from studio.model.document import workflow_from_data
from studio.model.workflow import Workflow


class EditorHost(QMainWindow):
    """Has the attributes that ``install_inspector`` and ``install_live_validation`` use."""

    def __init__(self, workflow: Workflow) -> None:
        super().__init__()
        self.resize(1200, 800)
        self.document = EditorDocument(workflow, self)
        self.scene = WorkflowScene(self)
        self.view = CanvasView(self.scene, self)
        self.store: Any = None
        self.setCentralWidget(self.view)
        self.menuBar().addMenu("&View")
        self.scene.set_document(self.document)


def build_workflow(steps: list[dict[str, Any]], edges: list[tuple[str, str]] = ()) -> Workflow:  # type: ignore[assignment]
    """Return a workflow of ``steps`` (step JSON) joined by ``(source, target)`` edges."""
    data = {
        "schema_version": 1,
        "name": "editor test",
        "input_schema": {"type": "object", "properties": {"topic": {"type": "string"}}},
        "steps": steps,
        "edges": [{"source": source, "target": target} for source, target in edges],
    }
    return workflow_from_data(data)


def llm(step_id: str, prompt: str = "Write about {{input.topic}}", **config: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "llm_call", "config": {"model": "m", "prompt": prompt, **config}}


def mcp(step_id: str, tool: str = "search", arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    config = {"instance_id": "fs", "tool": tool, "arguments": arguments if arguments is not None else {"query": "owls"}}
    return {"id": step_id, "type": "mcp_call", "config": config}


def lua(step_id: str, inputs: dict[str, Any] | None = None, source: str = "return 1") -> dict[str, Any]:
    return {"id": step_id, "type": "lua_script", "config": {"source": source, "inputs": inputs or {}}}


def human(step_id: str, title: str = "Approve") -> dict[str, Any]:
    return {"id": step_id, "type": "human_task", "config": {"title": title}}


def for_each(step_id: str, items: Any, body: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": step_id, "type": "for_each", "config": {"items": items, "steps": body}}
