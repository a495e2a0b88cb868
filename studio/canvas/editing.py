"""Canvas editing: the commands behind the editor's actions, and their installation on a window."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from PySide6.QtCore import QObject, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QInputDialog, QMainWindow, QMenu

from studio.canvas import arrange
from studio.canvas.annotations import AnnotationLayer
from studio.canvas.canvas_geometry import box_of, container_at, scope_edges, scopes, step_rects
from studio.canvas.document import EditorDocument
from studio.canvas.edge_item import EdgeItem
from studio.canvas.interactions import EditInteraction
from studio.canvas.minimap import Minimap
from studio.canvas.node_item import NodeItem
from studio.canvas.palette import StepPalette
from studio.canvas.quick_add import QuickAddEntry, QuickAddPopup, ToolEntry, ToolSource, build_entries, no_tools
from studio.canvas.scene import WorkflowScene
from studio.canvas.shortcuts import ACTIONS, ActionSpec, ShortcutHelpOverlay, shortcut_text
from studio.canvas.view import CanvasView
from studio.model.edits import EditError, Fragment, copy_fragment, new_step
from studio.model.workflow import AnyStep, JsonValue, McpCallStep, Position

logger = logging.getLogger(__name__)

NUDGE_PIXELS = 40
"""How far the arrow keys scroll the canvas when nothing is selected, in viewport pixels."""
MESSAGE_TIMEOUT_MS = 6000


READ_ONLY_ACTIONS = frozenset(
    {"copy", "select_all", "snap", "zoom_in", "zoom_out", "zoom_reset", "zoom_fit", "zoom_selection", "minimap",
     "shortcut_help"}
)  # fmt: skip
"""Canvas actions that leave the document unchanged, so they stay enabled on a read-only version."""


class CanvasEditing(QObject):
    """Turns a :class:`CanvasView` on an :class:`EditorDocument` into an editor.

    Every change goes through one ``EditorDocument`` method (or one ``macro``), so it is one undo
    step. Errors the document raises (:class:`EditError`) become a message on
    :attr:`sig_message_requested` and change nothing.
    """

    sig_message_requested = Signal(str)
    """Emitted with a sentence for the user, such as why a connection was rejected."""

    def __init__(
        self,
        document: EditorDocument,
        scene: WorkflowScene,
        view: CanvasView,
        *,
        tool_entries: ToolSource = no_tools,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.scene = scene
        self.view = view
        self.tool_entries: ToolSource = tool_entries
        self.snap_enabled = False
        self.grid_size = arrange.GRID_SIZE
        self.annotations = AnnotationLayer(document, scene, self)
        self.quick_add = QuickAddPopup(view)
        self.quick_add.sig_entry_chosen.connect(self._on_quick_add_chosen)
        self.help_overlay = ShortcutHelpOverlay(view)
        self.minimap = Minimap(view)
        self.actions: dict[str, QAction] = {}
        self.palette: StepPalette | None = None
        """The step palette dock, set by :func:`install_canvas_editing`."""
        self.confirm_removal: Callable[[list[str], Callable[[], None]], None] | None = None
        """Asks before steps are deleted: called with their ids and the deletion to run if the user agrees."""
        self._quick_add_target: tuple[QPointF, str | None, str | None] = (QPointF(), None, None)
        self._highlighted_port: str | None = None
        self._last_mouse_scene: QPointF | None = None
        self._create_actions()
        view.set_interaction(EditInteraction(view, self))
        view.viewport().setMouseTracking(True)
        view.sig_step_type_dropped.connect(self._on_step_type_dropped)
        view.sig_palette_changed.connect(self.annotations.apply_palette)
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self._on_context_menu_requested)
        for signal in (document.sig_reset, document.sig_steps_added):
            signal.connect(self.view.refresh_overview)
        for signal in (document.sig_steps_moved, document.sig_steps_removed, document.sig_edges_changed):
            signal.connect(self.view.invalidate_overview)

    # -- actions ---------------------------------------------------------------------------

    def _create_actions(self) -> None:
        for spec in ACTIONS:
            action = QAction(spec.text, self.view)
            action.setObjectName(f"canvas-{spec.name}")
            action.setShortcuts([QKeySequence(shortcut) for shortcut in spec.shortcuts])
            # Scoped to the canvas, so single-key shortcuts do not fire while typing in other panels.
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            keys = shortcut_text(spec)
            action.setToolTip(f"{spec.help} ({keys})" if keys else spec.help)
            action.setStatusTip(spec.help)
            action.setCheckable(spec.checkable)
            action.triggered.connect(self._handler(spec))
            self.view.addAction(action)
            self.actions[spec.name] = action
        self.actions["minimap"].setChecked(True)
        self.actions["snap"].setChecked(self.snap_enabled)

    def set_editable(self, editable: bool) -> None:
        """Enable or disable the actions that change the document (a read-only version disables them)."""
        for name, action in self.actions.items():
            if name not in READ_ONLY_ACTIONS:
                action.setEnabled(editable)

    def _handler(self, spec: ActionSpec) -> Callable[[bool], None]:
        method = getattr(self, spec.method)

        def run(checked: bool = False) -> None:
            with self.reporting_errors():
                if spec.checkable:
                    method(checked)
                else:
                    method()

        return run

    @contextmanager
    def reporting_errors(self) -> Iterator[None]:
        """Turn an :class:`EditError` raised inside the block into a message for the user."""
        try:
            yield
        except EditError as error:
            logger.info("canvas edit rejected: %s", error)
            self.show_message(str(error))

    def show_message(self, text: str) -> None:
        self.sig_message_requested.emit(text)

    def set_tool_source(self, tool_entries: ToolSource) -> None:
        """Set the callable that lists MCP tools for quick-add."""
        self.tool_entries = tool_entries

    # -- selection and positions -------------------------------------------------------------

    def selected_step_ids(self) -> list[str]:
        return self.view.selected_step_ids()

    def movable_selection(self) -> list[str]:
        """Return the selected steps minus those inside a selected ``for_each``, which move with it."""
        selected = set(self.selected_step_ids())
        result = []
        for step_id in selected:
            item = self.scene.node_item(step_id)
            parent = item.parentItem() if item is not None else None
            if not any(isinstance(p, NodeItem) and p.step_id in selected for p in _ancestors(parent)):
                result.append(step_id)
        return sorted(result)

    def step_positions(self, step_ids: list[str]) -> dict[str, tuple[float, float]]:
        """Return the model position of each step that has a node."""
        positions = {}
        for step_id in step_ids:
            if self.scene.node_item(step_id) is not None:
                positions[step_id] = self.scene.model_position(step_id)
        return positions

    def select_all(self) -> None:
        self.view.set_selected_step_ids([step_id for step_id in self.scene.node_items()])
        for note in self.annotations.note_items():
            note.setSelected(True)

    def cursor_scene_pos(self) -> QPointF:
        """Return the last mouse position over the canvas when it is still in view, else the canvas centre."""
        visible = self.view.visible_scene_rect()
        if self._last_mouse_scene is not None and visible.contains(self._last_mouse_scene):
            return QPointF(self._last_mouse_scene)
        return visible.center()

    def remember_mouse(self, scene_pos: QPointF) -> None:
        self._last_mouse_scene = QPointF(scene_pos)

    def set_port_highlight(self, port: tuple[NodeItem, str] | None) -> None:
        """Highlight the port under the mouse, so the user sees where a connection drag starts."""
        previous = self.scene.node_item(self._highlighted_port) if self._highlighted_port else None
        if previous is not None and (port is None or port[0] is not previous):
            previous.set_highlighted_port(None)
        if port is None:
            self._highlighted_port = None
            return
        port[0].set_highlighted_port(port[1])
        self._highlighted_port = port[0].step_id

    # -- adding steps ----------------------------------------------------------------------

    def open_quick_add(
        self, scene_pos: QPointF, *, connect_from: str | None = None, connect_to: str | None = None
    ) -> None:
        """Open the quick-add popup for a step at ``scene_pos``, optionally connected to an existing step."""
        if self.document.read_only:
            self.show_message("This workflow is read-only, so steps cannot be added")
            return
        self._quick_add_target = (QPointF(scene_pos), connect_from, connect_to)
        try:
            tools = self.tool_entries()
        except Exception:
            logger.exception("the MCP tool list for quick-add failed, so only step types are offered")
            tools = []
        view_point = self.view.mapFromScene(scene_pos)
        self.quick_add.open_at(self.view.viewport().mapToGlobal(view_point), build_entries(tools))

    def open_quick_add_at_cursor(self) -> None:
        self.open_quick_add(self.cursor_scene_pos())

    def _on_quick_add_chosen(self, entry: QuickAddEntry) -> None:
        scene_pos, connect_from, connect_to = self._quick_add_target
        with self.reporting_errors():
            step = self.create_step(entry.step_type, entry.tool)
            self.add_step_at(step, scene_pos, connect_from=connect_from, connect_to=connect_to)

    def create_step(self, step_type: str, tool: ToolEntry | None = None) -> AnyStep:
        """Return a new step of ``step_type``; with ``tool``, an ``mcp_call`` preconfigured for that tool."""
        step = new_step(step_type, self.document.workflow, tool=tool.tool_name if tool else None)
        if tool is None or not isinstance(step, McpCallStep):
            return step
        config = step.config.model_copy(
            update={
                "instance_id": tool.instance_id or None,
                "server_url": tool.server_url or None,
                "arguments": required_arguments(tool.input_schema),
            }
        )
        return step.model_copy(update={"config": config, "description": tool.description})

    def add_step_at(
        self,
        step: AnyStep,
        scene_pos: QPointF,
        *,
        connect_from: str | None = None,
        connect_to: str | None = None,
    ) -> str:
        """Add ``step`` at ``scene_pos`` as one undo step and select it; return its id.

        With ``connect_from`` (or ``connect_to``) the new step's input (output) port lands on
        ``scene_pos`` and an edge from (to) that step is added. Without either, the new step is
        centred on ``scene_pos``, and dropped onto an explicit edge it is inserted into that edge.
        A point inside a ``for_each`` body adds the step to that body.
        """
        width, height = NodeItem.WIDTH, NodeItem.HEIGHT
        if connect_from is not None:
            corner = QPointF(scene_pos.x(), scene_pos.y() - height / 2.0)
        elif connect_to is not None:
            corner = QPointF(scene_pos.x() - width, scene_pos.y() - height / 2.0)
        else:
            corner = QPointF(scene_pos.x() - width / 2.0, scene_pos.y() - height / 2.0)
        neighbour = connect_from or connect_to
        container = self._container_for(neighbour, scene_pos)
        position = self._model_corner(corner, container)
        edge = (
            None
            if neighbour
            else self.explicit_edge_at(QRectF(corner, QPointF(corner.x() + width, corner.y() + height)))
        )
        if edge is not None:
            step_id = self.document.splice(step, edge.source.step_id, edge.target.step_id, position)
        else:
            with self.document.macro(f"Add step {step.id}"):
                step_id = self.document.add_step(step, position, container)
                if connect_from is not None:
                    self.document.connect(connect_from, step_id)
                elif connect_to is not None:
                    self.document.connect(step_id, connect_to)
        self.view.ensure_scene_rect_contains(QRectF(corner, QPointF(corner.x() + width, corner.y() + height)))
        self.scene.clearSelection()
        self.view.set_selected_step_ids([step_id])
        return step_id

    def _container_for(self, neighbour: str | None, scene_pos: QPointF) -> str | None:
        if neighbour is not None:
            return self.document.slot(neighbour).container_id
        container = container_at(self.scene, scene_pos)
        return container.step_id if container is not None else None

    def _model_corner(self, corner: QPointF, container_id: str | None) -> tuple[float, float]:
        if self.snap_enabled:
            corner = QPointF(*arrange.snap_position((corner.x(), corner.y()), self.grid_size))
        container = self.scene.node_item(container_id) if container_id else None
        if container is None:
            return (corner.x(), corner.y())
        local = container.mapFromScene(corner)
        origin = container.body_origin()  # type: ignore[attr-defined]
        return (local.x() - origin.x(), local.y() - origin.y())

    def _on_step_type_dropped(self, step_type: str, scene_pos: QPointF) -> None:
        with self.reporting_errors():
            self.add_step_at(self.create_step(step_type), scene_pos)

    def add_step_type_at_center(self, step_type: str) -> None:
        """Add a step of ``step_type`` at the centre of the visible canvas (the palette's double-click)."""
        with self.reporting_errors():
            self.add_step_at(self.create_step(step_type), self.view.visible_scene_rect().center())

    def explicit_edge_at(self, scene_rect: QRectF, exclude: str | None = None) -> EdgeItem | None:
        """Return an explicit edge whose curve crosses ``scene_rect`` and does not touch ``exclude``."""
        for item in self.scene.items(scene_rect):
            if not isinstance(item, EdgeItem) or item.implied:
                continue
            if exclude in item.key:
                continue
            return item
        return None

    def splice_if_dropped_on_edge(self, step_id: str) -> None:
        """Insert the unconnected step ``step_id`` into an explicit edge it was dropped on."""
        item = self.scene.node_item(step_id)
        if item is None or item.edges():
            return
        edge = self.explicit_edge_at(box_of(item), exclude=step_id)
        if edge is None:
            return
        source, target = edge.key
        with self.reporting_errors():
            scope = self.document.slot(step_id).container_id
            if self.document.slot(source).container_id != scope:
                return
            with self.document.macro(f"Insert {step_id} between {source} and {target}"):
                self.document.disconnect(source, target)
                self.document.connect(source, step_id)
                self.document.connect(step_id, target)

    def connect_steps(self, source: str, target: str) -> bool:
        """Add the edge ``source`` -> ``target``; show why when the document rejects it."""
        with self.reporting_errors():
            self.document.connect(source, target)
            return True
        return False

    # -- delete, duplicate, clipboard -----------------------------------------------------------

    def delete_selection(self) -> None:
        """Remove the selected steps, explicit edges and notes as one undo step."""
        step_ids = self.movable_selection()
        removed = set(step_ids)
        edges = [key for key in self.view.selected_edge_keys() if not removed.intersection(key)]
        note_ids = [note.note_id for note in self.annotations.selected_notes()]
        if not (step_ids or edges or note_ids):
            return

        def delete() -> None:
            with self.document.macro("Delete selection"):
                for source, target in edges:
                    self.document.disconnect(source, target)
                if step_ids:
                    self.document.remove_steps(step_ids)
                if note_ids:
                    self.document.remove_notes(note_ids)

        if step_ids and self.confirm_removal is not None:
            self.confirm_removal(step_ids, delete)
        else:
            delete()

    def duplicate_selection(self) -> None:
        new_ids = self.document.duplicate(self.movable_selection())
        if new_ids:
            self.scene.clearSelection()
            self.view.set_selected_step_ids(new_ids)

    def copy_selection(self) -> Fragment | None:
        """Put the selected steps and notes on the system clipboard as fragment JSON; return the fragment."""
        step_ids = self.movable_selection()
        note_ids = [note.note_id for note in self.annotations.selected_notes()]
        if not (step_ids or note_ids):
            self.show_message("Nothing is selected to copy; select steps or notes first")
            return None
        fragment = copy_fragment(self.document.workflow, step_ids, note_ids)
        # Steps placed by the automatic layout have no stored position, so the copy gets the drawn one.
        drawn = self.step_positions(fragment.step_ids())
        fragment.steps = [
            step.model_copy(update={"position": Position(x=drawn[step.id][0], y=drawn[step.id][1])})
            if step.position is None and step.id in drawn
            else step
            for step in fragment.steps
        ]
        QGuiApplication.clipboard().setText(fragment.to_clipboard_text())
        logger.debug("copied %d steps and %d notes", len(step_ids), len(note_ids))
        return fragment

    def cut_selection(self) -> None:
        if self.copy_selection() is not None:
            self.delete_selection()

    def paste_clipboard(self, scene_pos: QPointF | None = None) -> list[str]:
        """Paste the fragment on the clipboard with its top-left step at ``scene_pos`` (default: the mouse)."""
        fragment = Fragment.from_clipboard_text(QGuiApplication.clipboard().text())
        target = scene_pos if scene_pos is not None else self.cursor_scene_pos()
        position = (target.x(), target.y())
        if self.snap_enabled:
            position = arrange.snap_position(position, self.grid_size)
        new_ids = self.document.paste(fragment, position)
        self.scene.clearSelection()
        self.view.set_selected_step_ids(new_ids)
        return new_ids

    # -- notes and groups -------------------------------------------------------------------

    def add_note_at_cursor(self) -> str:
        position = self.cursor_scene_pos()
        note_id = self.document.add_note("", (position.x(), position.y()))
        self.edit_note(note_id)
        return note_id

    def edit_note(self, note_id: str) -> None:
        item = self.annotations.note_item(note_id)
        if item is not None:
            item.start_editing()

    def group_selection(self) -> str | None:
        step_ids = self.movable_selection()
        if not step_ids:
            self.show_message("Select the steps to group first")
            return None
        return self.document.group(step_ids, f"Group {len(self.document.workflow.groups) + 1}")

    def ungroup_selection(self) -> None:
        selected = set(self.selected_step_ids())
        groups = [group.id for group in self.document.workflow.groups if selected.intersection(group.step_ids)]
        if not groups:
            self.show_message("None of the selected steps is in a group")
            return
        with self.document.macro("Ungroup"):
            for group_id in groups:
                self.document.ungroup(group_id)

    def rename_group(self, group_id: str, title: str | None = None) -> None:
        """Rename a group; without ``title`` ask the user. The group is replaced by one with the new title."""
        group = next((group for group in self.document.workflow.groups if group.id == group_id), None)
        if group is None:
            return
        if title is None:
            text, accepted = QInputDialog.getText(self.view, "Rename group", "Group title:", text=group.title)
            if not accepted:
                return
            title = text
        with self.reporting_errors(), self.document.macro("Rename group"):
            self.document.ungroup(group_id)
            self.document.group(group.step_ids, title)

    # -- arrange ---------------------------------------------------------------------------

    def _arrange_selection(self) -> dict[str, arrange.Rect]:
        step_ids = self.movable_selection()
        if len(step_ids) < 2:
            raise EditError("select at least two steps to align or distribute them")
        containers = {self.document.slot(step_id).container_id for step_id in step_ids}
        if len(containers) != 1:
            raise EditError("align steps of one level at a time: the selection mixes top-level and for_each body steps")
        return step_rects(self.scene, step_ids)

    def align(self, mode: str) -> None:
        positions = arrange.align(self._arrange_selection(), mode)
        self.document.apply_positions(positions, f"Align {mode.replace('_', ' ')}")

    def distribute(self, axis: str) -> None:
        positions = arrange.distribute(self._arrange_selection(), axis)
        self.document.apply_positions(positions, f"Distribute {axis}ly")

    def align_left(self) -> None:
        self.align("left")

    def align_right(self) -> None:
        self.align("right")

    def align_top(self) -> None:
        self.align("top")

    def align_bottom(self) -> None:
        self.align("bottom")

    def align_center_horizontal(self) -> None:
        self.align("center_horizontal")

    def align_center_vertical(self) -> None:
        self.align("center_vertical")

    def distribute_horizontal(self) -> None:
        self.distribute("horizontal")

    def distribute_vertical(self) -> None:
        self.distribute("vertical")

    def auto_layout(self) -> None:
        """Lay out the selection (two or more steps of one level) or, with less selected, every level."""
        workflow = self.document.workflow
        pinned = {step.id for step in workflow.iter_steps() if step.layout_pinned}
        selection = self.movable_selection()
        whole = len(selection) < 2
        groups = scopes(workflow) if whole else {self.document.slot(selection[0]).container_id: selection}
        positions: dict[str, tuple[float, float]] = {}
        for scope_id, step_ids in groups.items():
            chosen = set(step_ids)
            edges = [(s, t) for s, t in scope_edges(workflow, scope_id) if s in chosen and t in chosen]
            positions.update(arrange.auto_layout(step_rects(self.scene, step_ids), edges, pinned))
        self.document.apply_positions(positions, "Auto-layout")
        if whole:
            self.view.zoom_to_fit()

    def pin_selection(self) -> None:
        self.document.set_layout_pinned(self.selected_step_ids(), True)

    def unpin_selection(self) -> None:
        self.document.set_layout_pinned(self.selected_step_ids(), False)

    def set_snap_enabled(self, enabled: bool) -> None:
        self.snap_enabled = enabled
        self.actions["snap"].setChecked(enabled)

    def nudge(self, dx: float, dy: float) -> None:
        """Move the selected steps by ``dx``, ``dy`` grid steps; with nothing selected, scroll the canvas."""
        start = self.step_positions(self.movable_selection())
        if not start:
            self.view.pan_by(round(-dx * NUDGE_PIXELS), round(-dy * NUDGE_PIXELS))
            return
        grid = self.grid_size
        self.document.move_steps({key: (x + dx * grid, y + dy * grid) for key, (x, y) in start.items()})

    def nudge_left(self) -> None:
        self.nudge(-1, 0)

    def nudge_right(self) -> None:
        self.nudge(1, 0)

    def nudge_up(self) -> None:
        self.nudge(0, -1)

    def nudge_down(self) -> None:
        self.nudge(0, 1)

    # -- view ------------------------------------------------------------------------------

    def zoom_in(self) -> None:
        self.view.zoom_in()

    def zoom_out(self) -> None:
        self.view.zoom_out()

    def zoom_reset(self) -> None:
        self.view.reset_zoom()

    def zoom_to_fit(self) -> None:
        self.view.zoom_to_fit()

    def zoom_to_selection(self) -> None:
        self.view.zoom_to_selection()

    def set_minimap_visible(self, visible: bool) -> None:
        self.minimap.setVisible(visible)
        self.actions["minimap"].setChecked(visible)

    def toggle_shortcut_help(self) -> None:
        self.help_overlay.toggle()

    def _on_context_menu_requested(self, position: QPoint) -> None:
        node = self.view.node_at(position)
        if node is not None and node.step_id not in self.selected_step_ids():
            self.scene.clearSelection()
            self.view.set_selected_step_ids([node.step_id])
        menu = QMenu(self.view)
        names = (
            ["quick_add", "add_note", "paste"]
            if node is None
            else [
                "copy",
                "cut",
                "duplicate",
                "delete",
                "group",
                "ungroup",
                "pin_layout",
                "unpin_layout",
                "auto_layout",
            ]
        )
        for name in names:
            menu.addAction(self.actions[name])
        self.remember_mouse(self.view.mapToScene(position))
        menu.popup(self.view.viewport().mapToGlobal(position))


def required_arguments(input_schema: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """Return a starting ``arguments`` object for a tool: each required property with its default or an empty value."""
    properties = input_schema.get("properties")
    required = input_schema.get("required")
    if not isinstance(properties, dict) or not isinstance(required, list):
        return {}
    empty: dict[str, JsonValue] = {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}
    arguments: dict[str, JsonValue] = {}
    for name in required:
        spec = properties.get(name) if isinstance(name, str) else None
        if not isinstance(name, str) or not isinstance(spec, dict):
            continue
        if "default" in spec:
            arguments[name] = spec["default"]
        else:
            kind = spec.get("type")
            arguments[name] = empty.get(kind, "") if isinstance(kind, str) else ""
    return arguments


def _ancestors(item: Any) -> Iterator[Any]:
    while item is not None:
        yield item
        item = item.parentItem()


def _menu(window: QMainWindow, title: str, before: str | None = None) -> QMenu:
    """Return the window's menu whose title is ``title`` (ignoring the & mnemonic), creating it if needed."""
    bar = window.menuBar()
    plain = title.replace("&", "")
    for action in bar.actions():
        menu = action.menu()
        if isinstance(menu, QMenu) and action.text().replace("&", "") == plain:
            return menu
    menu = QMenu(title, window)
    anchor = next((a for a in bar.actions() if before and a.text().replace("&", "") == before), None)
    if anchor is not None:
        bar.insertMenu(anchor, menu)
    else:
        bar.addMenu(menu)
    return menu


def install_canvas_editing(window: QMainWindow, tool_entries: ToolSource = no_tools) -> CanvasEditing:
    """Make ``window``'s canvas editable: actions, Edit/Arrange/View menu entries, step palette and minimap.

    ``window`` needs ``document`` (:class:`EditorDocument`), ``scene`` (following that document)
    and ``view``. Window actions named ``action_zoom_in``/``action_zoom_out`` lose their shortcuts,
    because the canvas actions take the same keys and Qt ignores ambiguous shortcuts.
    """
    document: EditorDocument = window.document  # type: ignore[attr-defined]
    scene: WorkflowScene = window.scene  # type: ignore[attr-defined]
    view: CanvasView = window.view  # type: ignore[attr-defined]
    editing = CanvasEditing(document, scene, view, tool_entries=tool_entries, parent=window)
    taken_over = []
    for name in ("action_zoom_in", "action_zoom_out", "action_fit"):
        action = getattr(window, name, None)
        if isinstance(action, QAction):
            action.setShortcuts([])
            taken_over.append(name)
    menus = {
        "Edit": _menu(window, "&Edit", before="Run"),
        "Arrange": _menu(window, "&Arrange", before="Run"),
        "View": _menu(window, "&View"),
    }
    for spec in ACTIONS:
        if spec.menu == "View" and taken_over and spec.name in ("zoom_in", "zoom_out", "zoom_fit"):
            continue  # The window's own View entries already run the same commands.
        menu = menus[spec.menu]
        if spec.name.startswith("nudge_"):
            continue
        if spec.name in ("quick_add", "align_left", "zoom_in", "zoom_reset", "distribute_horizontal", "auto_layout"):
            menu.addSeparator()
        menu.addAction(editing.actions[spec.name])
    palette = StepPalette(window)
    palette.sig_step_type_activated.connect(editing.add_step_type_at_center)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, palette)
    menus["View"].addAction(palette.toggleViewAction())
    editing.palette = palette
    status_bar = window.statusBar()
    editing.sig_message_requested.connect(lambda text: status_bar.showMessage(text, MESSAGE_TIMEOUT_MS))
    logger.debug("canvas editing installed; window shortcuts taken over: %s", ", ".join(taken_over) or "none")
    return editing
