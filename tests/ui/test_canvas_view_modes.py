"""Canvas view modes: the zoomed-out overview of large graphs, the minimap, snapping, nudging and read-only documents."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QContextMenuEvent, QImage, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QMenu

from studio.canvas import theme
from studio.canvas.view import OVERVIEW_MIN_NODES, OVERVIEW_ZOOM
from studio.model.document import workflow_from_data
from studio.model.workflow import Workflow
from tests.ui.canvas_helpers import CTRL, EditorWindow, center_point, drag, editing_of, node, window

__all__ = ["window"]  # the fixture, imported so pytest finds it here


def grid_document(count: int, columns: int = 25) -> dict[str, Any]:
    steps = [
        {"id": f"s{index}", "type": "lua_script",
         "position": {"x": (index % columns) * 300.0, "y": (index // columns) * 120.0}}
        for index in range(count)
    ]
    edges = [{"source": f"s{index - 1}", "target": f"s{index}"} for index in range(1, count) if index % columns]
    return {"schema_version": 1, "steps": steps, "edges": edges}


def render(window: EditorWindow) -> QImage:
    view = window.view
    image = QImage(view.viewport().size(), QImage.Format.Format_ARGB32)
    image.fill(QColor("#000000"))
    painter = QPainter(image)
    view.render(painter)
    painter.end()
    return image


def test_overview_keeps_selection(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data(grid_document(OVERVIEW_MIN_NODES + 100)))
    editing_of(window)
    view = window.view
    view.set_selected_step_ids(["s3", "s7"])
    with qtbot.waitSignal(view.sig_overview_changed) as blocker:
        view.zoom_to_fit()
    assert blocker.args == [True]
    assert view.zoom() < OVERVIEW_ZOOM
    assert not node(window, "s0").isVisible()
    assert not any(edge.isVisible() for edge in window.scene.edge_items().values())
    assert view.selected_step_ids() == ["s3", "s7"]

    image = render(window)
    box = node(window, "s0").sceneBoundingRect().center()
    point = view.mapFromScene(box)
    assert image.pixelColor(point.x(), point.y()) != image.pixelColor(2, 2), "the overview drew no box for s0"

    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=center_point(window, "s10"))
    assert view.selected_step_ids() == ["s10"]
    view.reset_zoom()
    assert not view.overview
    assert node(window, "s0").isVisible()
    assert node(window, "s10").isSelected()


def test_small_graph_never_uses_overview(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data(grid_document(20)))
    editing_of(window)
    window.view.zoom_by(0.01)
    assert window.view.zoom() < OVERVIEW_ZOOM
    assert not window.view.overview
    assert node(window, "s0").isVisible()


def test_minimap_click_scrolls_view(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data(grid_document(60)))
    editing = editing_of(window)
    editing.set_minimap_visible(True)
    view = window.view
    view.reset_zoom()
    view.centerOn(node(window, "s0"))
    minimap = editing.minimap
    assert minimap.isVisible()
    assert view.rect().contains(minimap.geometry())
    far = node(window, "s59").sceneBoundingRect().center()
    scale, dx, dy = minimap._transform()
    target = QPoint(round(far.x() * scale + dx), round(far.y() * scale + dy))
    qtbot.mouseClick(minimap, Qt.MouseButton.LeftButton, pos=target)
    visible = view.visible_scene_rect()
    assert visible.contains(far)


def test_snap_to_grid_while_dragging(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({"schema_version": 1, "steps": [
        {"id": "a", "type": "lua_script", "position": {"x": 3.0, "y": 7.0}}]}))
    editing = editing_of(window)
    window.view.reset_zoom()
    window.view.centerOn(node(window, "a"))
    qtbot.keyClick(window.view, Qt.Key.Key_G, Qt.KeyboardModifier.AltModifier)
    assert editing.snap_enabled
    start = center_point(window, "a")
    drag(qtbot, window, start, start + QPoint(47, 33))
    position = window.document.find_step("a").position
    assert position is not None
    assert (position.x % 20.0, position.y % 20.0) == (0.0, 0.0)


def test_arrow_keys_nudge_selection_or_pan(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({"schema_version": 1, "steps": [
        {"id": "a", "type": "lua_script", "position": {"x": 0.0, "y": 0.0}}]}))
    editing_of(window)
    view = window.view
    view.set_selected_step_ids(["a"])
    qtbot.keyClick(view, Qt.Key.Key_Right)
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert node(window, "a").pos() == QPointF(20.0, 20.0)
    view.scene().clearSelection()
    before = view.mapToScene(QPoint(0, 0))
    qtbot.keyClick(view, Qt.Key.Key_Left)
    after = view.mapToScene(QPoint(0, 0))
    assert after.x() < before.x()
    assert node(window, "a").pos() == QPointF(20.0, 20.0)


def test_selection_layout_keeps_pinned(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({"schema_version": 1, "steps": [
        {"id": "a", "type": "lua_script", "position": {"x": 500.0, "y": 0.0}},
        {"id": "b", "type": "lua_script", "position": {"x": 0.0, "y": 0.0}},
        {"id": "c", "type": "lua_script", "position": {"x": 900.0, "y": 900.0}, "layout_pinned": True},
    ], "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}]}))
    editing = editing_of(window)
    window.view.set_selected_step_ids(["a", "b", "c"])
    editing.actions["auto_layout"].trigger()
    assert node(window, "a").pos().x() < node(window, "b").pos().x()
    assert node(window, "c").pos() == QPointF(900.0, 900.0)
    window.view.set_selected_step_ids(["a"])
    editing.actions["pin_layout"].trigger()
    assert window.document.find_step("a").layout_pinned


def test_read_only_rejects_edits(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({"schema_version": 1, "steps": [
        {"id": "a", "type": "lua_script", "position": {"x": 0.0, "y": 0.0}}]}))
    window.document.read_only = True
    editing = editing_of(window)
    messages: list[str] = []
    editing.sig_message_requested.connect(messages.append)
    window.view.set_selected_step_ids(["a"])
    qtbot.keyClick(window.view, Qt.Key.Key_D, CTRL)
    assert [step.id for step in window.document.workflow.steps] == ["a"]
    assert messages and "read-only" in messages[-1]


def test_palette_filter_hides_other_types(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(Workflow())
    editing = editing_of(window)
    palette = editing.palette
    assert palette is not None
    qtbot.keyClicks(palette.filter_edit, "lua")
    visible_types = [palette.list.item(row).data(Qt.ItemDataRole.UserRole)
             for row in range(palette.list.count()) if not palette.list.item(row).isHidden()]
    assert visible_types == ["lua_script"]


def test_quick_add_escape_adds_nothing(qtbot: Any, window: EditorWindow) -> None:
    editing = editing_of(window)
    qtbot.keyClick(window.view, Qt.Key.Key_Tab)
    qtbot.waitUntil(editing.quick_add.isVisible)
    qtbot.keyClick(editing.quick_add.search, Qt.Key.Key_Escape)
    assert not editing.quick_add.isVisible()
    assert window.document.workflow.steps == []


def test_palette_switch_recolours_notes(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({"schema_version": 1, "notes": [{"id": "n1", "text": "hello"}]}))
    editing = editing_of(window)
    note = editing.annotations.note_item("n1")
    assert note is not None
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    original = app.palette()
    dark = QPalette(original)
    dark.setColor(QPalette.ColorRole.Window, QColor("#202020"))
    dark.setColor(QPalette.ColorRole.Base, QColor("#181818"))
    dark.setColor(QPalette.ColorRole.Text, QColor("#e8e8e8"))
    try:
        with qtbot.waitSignal(window.view.sig_palette_changed):
            app.setPalette(dark)
        assert note._text.defaultTextColor() == theme.note_text(dark)
        assert theme.is_dark(dark)
    finally:
        with qtbot.waitSignal(window.view.sig_palette_changed):
            app.setPalette(original)
    assert note._text.defaultTextColor() == theme.note_text(original)


def test_middle_and_space_drag_pan(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({"schema_version": 1, "steps": [
        {"id": "a", "type": "lua_script", "position": {"x": 0.0, "y": 0.0}}]}))
    editing_of(window)
    view = window.view
    view.reset_zoom()
    viewport = view.viewport()
    start = center_point(window, "a")
    before = view.mapToScene(QPoint(0, 0))
    qtbot.mousePress(viewport, Qt.MouseButton.MiddleButton, pos=start)
    qtbot.mouseMove(viewport, start + QPoint(40, 30))
    qtbot.mouseRelease(viewport, Qt.MouseButton.MiddleButton, pos=start + QPoint(40, 30))
    after = view.mapToScene(QPoint(0, 0))
    assert (before.x() - after.x(), before.y() - after.y()) == (40.0, 30.0)
    assert node(window, "a").pos() == QPointF(0.0, 0.0)

    qtbot.keyPress(view, Qt.Key.Key_Space)
    assert view.space_held
    drag(qtbot, window, start, start + QPoint(-20, 10))
    qtbot.keyRelease(view, Qt.Key.Key_Space)
    moved = view.mapToScene(QPoint(0, 0))
    assert (after.x() - moved.x(), after.y() - moved.y()) == (-20.0, 10.0)
    assert node(window, "a").pos() == QPointF(0.0, 0.0)
    assert not view.space_held


def test_double_click_opens_quick_add(qtbot: Any, window: EditorWindow) -> None:
    editing = editing_of(window)
    point = QPoint(300, 200)
    qtbot.mouseDClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=point)
    qtbot.waitUntil(editing.quick_add.isVisible)
    qtbot.keyClicks(editing.quick_add.search, "human")
    qtbot.keyClick(editing.quick_add.search, Qt.Key.Key_Return)
    [step] = window.document.workflow.steps
    assert step.type == "human_task"
    box = node(window, step.id).mapRectToScene(0.0, 0.0, *node(window, step.id).size())
    assert box.contains(window.view.mapToScene(point))


def test_right_click_node_menu(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data({"schema_version": 1, "steps": [
        {"id": "a", "type": "lua_script", "position": {"x": 0.0, "y": 0.0}},
        {"id": "b", "type": "lua_script", "position": {"x": 400.0, "y": 0.0}}]}))
    editing_of(window)
    window.view.zoom_to_fit()
    window.view.set_selected_step_ids(["a"])
    point = center_point(window, "b")
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, point, window.view.viewport().mapToGlobal(point))
    QApplication.sendEvent(window.view.viewport(), event)
    menus = [menu for menu in window.view.findChildren(QMenu) if menu.isVisible()]
    assert len(menus) == 1
    texts = [action.text() for action in menus[0].actions()]
    assert "Copy" in texts
    assert "Delete" in texts
    assert window.view.selected_step_ids() == ["b"]
    menus[0].close()


def test_overview_follows_status_and_moves(qtbot: Any, window: EditorWindow) -> None:
    window.document.load(workflow_from_data(grid_document(OVERVIEW_MIN_NODES + 100)))
    editing_of(window)
    view = window.view
    view.zoom_to_fit()
    assert view.overview
    render(window)
    window.scene.set_step_status("s0", "failed")
    center = view.mapFromScene(node(window, "s0").sceneBoundingRect().center())
    failed = render(window).pixelColor(center.x(), center.y())
    assert failed == theme.status_color("failed")

    window.document.move_steps({"s0": (-2000.0, -2000.0)})
    image = render(window)
    assert image.pixelColor(center.x(), center.y()) != theme.status_color("failed")
    view.zoom_to_fit()
    assert view.overview
    moved = view.mapFromScene(QPointF(-2000.0 + 110.0, -2000.0 + 39.0))
    assert render(window).pixelColor(moved.x(), moved.y()) == theme.status_color("failed")
