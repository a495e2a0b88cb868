"""Canvas scene tests: items per step, explicit and implied edges, containers, statuses and the view."""

from __future__ import annotations

import sys
from typing import Any

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QWheelEvent
from PySide6.QtWidgets import QApplication

from studio.canvas import CanvasView, ContainerItem, NodeItem, WorkflowScene
from studio.canvas.node_item import PLAIN_ZOOM
from studio.canvas.theme import status_color
from studio.model.document import workflow_from_data
from studio.model.workflow import LuaScriptStep


def make_scene(document: dict[str, Any]) -> WorkflowScene:
    scene = WorkflowScene()
    scene.set_workflow(workflow_from_data(document))
    return scene


def render_item(scene: WorkflowScene, item: NodeItem, scale: float = 1.0) -> QImage:
    """Render the box of ``item`` into an image of its size times ``scale``."""
    width, height = item.size()
    image = QImage(round(width * scale), round(height * scale), QImage.Format.Format_ARGB32)
    image.fill(QColor("#000000"))
    painter = QPainter(image)
    scene.render(painter, QRectF(image.rect()), item.mapRectToScene(QRectF(0.0, 0.0, width, height)))
    painter.end()
    return image


def color_distance(first: QColor, second: QColor) -> int:
    return abs(first.red() - second.red()) + abs(first.green() - second.green()) + abs(first.blue() - second.blue())


def test_scene_has_one_node_per_step(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    assert sorted(scene.node_items()) == ["announce", "label", "loop", "numbers", "square", "total"]
    for step_id, item in scene.node_items().items():
        assert item.step_id == step_id
        assert item.status == "pending"


def test_scene_draws_explicit_and_implied_edges(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    edges = scene.edge_items()
    assert sorted(edges) == [
        ("loop", "total"),
        ("numbers", "loop"),
        ("square", "label"),
        ("total", "announce"),
    ]
    assert edges[("total", "announce")].implied is False
    assert edges[("numbers", "loop")].implied is True
    assert edges[("square", "label")].implied is True
    assert edges[("loop", "total")].implied is True


def test_explicit_edge_wins_over_implied_duplicate(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    document = pipeline
    document["edges"].append({"source": "numbers", "target": "loop"})
    scene = WorkflowScene()
    scene.set_workflow(workflow_from_data(document))
    edge = scene.edge_item("numbers", "loop")
    assert edge is not None
    assert edge.implied is False
    assert len(scene.edge_items()) == 4


def test_body_reference_to_outer_step_draws_crossing_edge(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    document = pipeline
    body = document["steps"][1]["config"]["steps"]
    body[1]["config"]["inputs"]["first"] = "{{steps.numbers.result[0]}}"
    scene = WorkflowScene()
    scene.set_workflow(workflow_from_data(document))
    edge = scene.edge_item("numbers", "label")
    assert edge is not None
    assert edge.implied is True
    numbers = scene.node_item("numbers")
    loop = scene.node_item("loop")
    assert numbers is not None and loop is not None
    assert numbers.sceneBoundingRect().right() < loop.sceneBoundingRect().left()


def test_for_each_container_holds_body_nodes(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    loop = scene.node_item("loop")
    assert isinstance(loop, ContainerItem)
    for body_id in ("square", "label"):
        body = scene.node_item(body_id)
        assert body is not None
        assert body.parentItem() is loop
        assert loop.sceneBoundingRect().contains(body.sceneBoundingRect())
    square = scene.node_item("square")
    label = scene.node_item("label")
    assert square is not None and label is not None
    assert square.scenePos().x() < label.scenePos().x()


def test_auto_layout_puts_sources_left_of_targets(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    for (source, target), edge in scene.edge_items().items():
        assert edge.source.sceneBoundingRect().right() < edge.target.sceneBoundingRect().left(), (source, target)


def test_layout_keeps_explicit_positions(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    document = pipeline
    document["steps"][0]["position"] = {"x": -500.0, "y": 320.0}
    scene = WorkflowScene()
    scene.set_workflow(workflow_from_data(document))
    numbers = scene.node_item("numbers")
    assert numbers is not None
    assert numbers.pos() == QPointF(-500.0, 320.0)


def test_nodes_do_not_overlap(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    top_level = [item for item in scene.node_items().values() if item.parentItem() is None]
    for index, first in enumerate(top_level):
        for second in top_level[index + 1:]:
            assert not first.sceneBoundingRect().intersects(second.sceneBoundingRect()), (first.step_id, second.step_id)


def test_status_update_recolours_only_that_node(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    scene.set_step_status("total", "failed", "tool_error: boom")
    total = scene.node_item("total")
    announce = scene.node_item("announce")
    assert total is not None and announce is not None
    assert (total.status, total.detail) == ("failed", "tool_error: boom")
    assert announce.status == "pending"

    badge_point = (NodeItem.MARGIN + 4, round(NodeItem.HEIGHT - NodeItem.MARGIN - 9))
    failed_pixel = render_item(scene, total).pixelColor(*badge_point)
    pending_pixel = render_item(scene, announce).pixelColor(*badge_point)
    assert color_distance(failed_pixel, status_color("failed")) < 30
    assert color_distance(pending_pixel, status_color("pending")) < 30


def test_unknown_status_is_rejected(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    item = scene.node_item("numbers")
    assert item is not None
    try:
        item.set_status("exploded")
    except ValueError as error:
        assert "exploded" in str(error)
    else:
        raise AssertionError("set_status accepted an unknown status")


def test_reset_statuses_returns_nodes_to_pending(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    scene.set_step_status("numbers", "completed", "0.10 s")
    scene.reset_statuses()
    numbers = scene.node_item("numbers")
    assert numbers is not None
    assert (numbers.status, numbers.detail) == ("pending", "")


def test_zoomed_out_nodes_paint_plain_boxes(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    scene.set_step_status("total", "completed")
    total = scene.node_item("total")
    assert total is not None
    small = render_item(scene, total, scale=PLAIN_ZOOM / 2)
    centre = small.pixelColor(small.width() // 2, small.height() // 2)
    assert color_distance(centre, status_color("completed")) < 30


def test_set_workflow_replaces_items(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    only = {"id": "only", "type": "lua_script", "config": {"source": "return 1"}}
    scene.set_workflow(workflow_from_data({"schema_version": 1, "steps": [only]}))
    assert list(scene.node_items()) == ["only"]
    assert scene.edge_items() == {}
    scene.set_workflow(None)
    assert scene.node_items() == {}
    assert scene.items() == []


def test_edges_follow_moved_node(qapp: QApplication, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    edge = scene.edge_item("total", "announce")
    announce = scene.node_item("announce")
    assert edge is not None and announce is not None
    announce.setPos(announce.pos() + QPointF(0.0, 300.0))
    assert edge.path().currentPosition().y() > announce.input_anchor().y() - 1.0
    assert abs(edge.path().currentPosition().y() - announce.input_anchor().y()) < 1.0


def test_node_moves_keep_none_refcount(qapp: QApplication, single_step: dict[str, Any]) -> None:
    # PySide6 6.12.0 on CPython 3.11 drops a reference to None per setPos() on items that send
    # geometry changes, and the interpreter aborts after a few thousand moves.
    scene = WorkflowScene()
    scene.set_workflow(workflow_from_data(single_step))
    item = scene.node_item("a")
    assert item is not None
    before = sys.getrefcount(None)
    for index in range(10_000):
        item.setPos(float(index % 100), float(index % 37))
    after = sys.getrefcount(None)
    assert after >= before - 50, f"None lost {before - after} references over 10,000 moves"


def test_view_zoom_to_fit_shows_every_node(qtbot: Any, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    view = CanvasView(scene)
    qtbot.addWidget(view)
    view.resize(500, 300)
    view.show()
    qtbot.waitExposed(view)
    view.zoom_to_fit()
    visible = view.visible_scene_rect()
    for item in scene.node_items().values():
        assert visible.contains(item.sceneBoundingRect()), item.step_id
    assert view.zoom() <= 1.0


def test_view_f_key_fits(qtbot: Any, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    view = CanvasView(scene)
    qtbot.addWidget(view)
    view.resize(500, 300)
    view.show()
    qtbot.waitExposed(view)
    view.zoom_by(3.0)
    with qtbot.waitSignal(view.sig_zoom_changed):
        qtbot.keyClick(view, Qt.Key.Key_F)
    assert view.zoom() < 1.0


def test_wheel_zoom_keeps_point_under_mouse(qtbot: Any, pipeline: dict[str, Any]) -> None:
    scene = make_scene(pipeline)
    view = CanvasView(scene)
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    qtbot.waitExposed(view)
    mouse = QPoint(150, 120)
    before = view.mapToScene(mouse)
    event = QWheelEvent(
        QPointF(mouse), QPointF(view.viewport().mapToGlobal(mouse)), QPoint(0, 0), QPoint(0, 120),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )
    QApplication.sendEvent(view.viewport(), event)
    assert abs(view.zoom() - 1.15) < 1e-6
    after = view.mapToScene(mouse)
    assert abs(after.x() - before.x()) < 2.0
    assert abs(after.y() - before.y()) < 2.0


def test_drag_on_background_pans(qtbot: Any, single_step: dict[str, Any]) -> None:
    scene = WorkflowScene()
    scene.set_workflow(workflow_from_data(single_step))
    view = CanvasView(scene)
    qtbot.addWidget(view)
    view.resize(300, 200)
    view.show()
    qtbot.waitExposed(view)
    start = QPoint(5, 5)
    assert view.itemAt(start) is None
    before = view.mapToScene(start)
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view.viewport(), QPoint(45, 35))
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(45, 35))
    after = view.mapToScene(start)
    assert abs((before.x() - after.x()) - 40.0) < 1.5
    assert abs((before.y() - after.y()) - 30.0) < 1.5


def test_step_title_shown_from_model(qapp: QApplication) -> None:
    step = LuaScriptStep(id="a", name="Alpha")
    item = NodeItem(step)
    assert item.title == "Alpha"
    item.set_step(LuaScriptStep(id="a"))
    assert item.title == "a"
