"""Shared pieces of the canvas editing tests: a minimal editor window and mouse and keyboard helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QMainWindow

from studio.canvas.document import EditorDocument
from studio.canvas.editing import CanvasEditing, install_canvas_editing
from studio.canvas.node_item import NodeItem
from studio.canvas.scene import WorkflowScene
from studio.canvas.view import CanvasView
from studio.model.workflow import Workflow

CTRL = Qt.KeyboardModifier.ControlModifier
LEFT = Qt.MouseButton.LeftButton


class EditorWindow(QMainWindow):
    """The smallest window install_canvas_editing accepts: a document, a scene that follows it and a view."""

    def __init__(self, workflow: Workflow) -> None:
        super().__init__()
        self.document = EditorDocument(workflow, self)
        self.scene = WorkflowScene(self)
        self.scene.set_document(self.document)
        self.view = CanvasView(self.scene, self)
        self.setCentralWidget(self.view)


@pytest.fixture
def window(qtbot: Any) -> Iterator[EditorWindow]:
    window = EditorWindow(Workflow(name="Built by hand"))
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    window.view.setFocus()
    yield window


def editing_of(window: EditorWindow, **kwargs: Any) -> CanvasEditing:
    editing = install_canvas_editing(window, **kwargs)
    editing.set_minimap_visible(False)
    return editing


def node(window: EditorWindow, step_id: str) -> NodeItem:
    item = window.scene.node_item(step_id)
    assert item is not None, f"no node for {step_id}"
    return item


def view_point(window: EditorWindow, scene_point: QPointF) -> QPoint:
    return window.view.mapFromScene(scene_point)


def port_point(window: EditorWindow, step_id: str, port: str) -> QPoint:
    return view_point(window, node(window, step_id).port_center(port))


def center_point(window: EditorWindow, step_id: str) -> QPoint:
    return view_point(window, node(window, step_id).sceneBoundingRect().center())


def drag(qtbot: Any, window: EditorWindow, start: QPoint, end: QPoint, modifier: Any = Qt.KeyboardModifier.NoModifier) -> None:
    viewport = window.view.viewport()
    qtbot.mousePress(viewport, LEFT, modifier, start)
    steps = 6
    for index in range(1, steps + 1):
        point = start + (end - start) * index / steps
        qtbot.mouseMove(viewport, point)
    qtbot.mouseRelease(viewport, LEFT, modifier, end)


def hover(window: EditorWindow, point: QPoint) -> None:
    """Move the mouse over the canvas without buttons.

    A synthetic event is sent because QTest moves an unpressed mouse through the platform cursor,
    which the offscreen platform maps into the wrong widget coordinates when docks are present.
    """
    viewport = window.view.viewport()
    event = QMouseEvent(
        QEvent.Type.MouseMove, QPointF(point), QPointF(viewport.mapToGlobal(point)),
        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(viewport, event)


def click(qtbot: Any, window: EditorWindow, point: QPoint, modifier: Any = Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.mouseClick(window.view.viewport(), LEFT, modifier, point)


def quick_add(qtbot: Any, editing: CanvasEditing, query: str) -> None:
    """Pick the first quick-add entry matching ``query`` by typing it and pressing Enter."""
    popup = editing.quick_add
    qtbot.waitUntil(popup.isVisible)
    qtbot.keyClicks(popup.search, query)
    qtbot.keyClick(popup.search, Qt.Key.Key_Return)
    assert not popup.isVisible()


def tab_add_at(qtbot: Any, window: EditorWindow, editing: CanvasEditing, point: QPoint, query: str) -> str:
    """Add a step with Tab quick-add at viewport ``point``; return its id."""
    before = {step.id for step in window.document.workflow.steps}
    hover(window, point)
    qtbot.keyClick(window.view, Qt.Key.Key_Tab)
    quick_add(qtbot, editing, query)
    added = {step.id for step in window.document.workflow.steps} - before
    assert len(added) == 1, added
    return added.pop()


def top_level_edges(window: EditorWindow) -> set[tuple[str, str]]:
    return {(edge.source, edge.target) for edge in window.document.workflow.edges}
