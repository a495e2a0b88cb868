"""The studio main window: workflow canvas, run controls, runs list, timeline, step details and event log."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QToolBar,
    QWidget,
)

from studio.app.editor_actions import install_editor_actions
from studio.app.event_batcher import EventBatcher
from studio.app.input_dialog import RunInputDialog, required_inputs_missing
from studio.app.recovery import default_recovery_dir
from studio.app.run_controller import RunController
from studio.app.run_status import TERMINAL_RUN_STATES, RunStatusTracker, StatusUpdate, format_duration
from studio.app.window_features import install_window_features
from studio.canvas import CanvasView, WorkflowScene
from studio.canvas.document import EditorDocument
from studio.canvas.icons import RESOURCES_DIR
from studio.canvas.node_item import NodeItem
from studio.engine.compare import CompareError, compare_runs
from studio.engine.control import ControlTimeout, control_run
from studio.engine.events import EventType, RunEvent
from studio.model.document import DocumentError, content_hash, load_workflow
from studio.model.workflow import ForEachStep, JsonValue, Workflow
from studio.panels.command_center.panel import CommandCenterPanel, badge_text
from studio.panels.compare.panel import CompareDialog
from studio.panels.event_log import EventLogPanel
from studio.panels.runs.panel import RunsPanel
from studio.panels.step_details.model import LogLine, build_step_details, progress_line
from studio.panels.step_details.panel import StepDetailsPanel
from studio.panels.timeline.model import TimelineModel, run_event_from_row, step_id_of
from studio.panels.timeline.widget import TimelineWidget

if TYPE_CHECKING:
    from studio.engine import Engine
    from studio.store import RunRecord, Store

logger = logging.getLogger(__name__)

EXAMPLES_DIR = RESOURCES_DIR / "examples"
FILE_FILTER = "Workflow files (*.workflow.json *.json);;All files (*)"
ACTIVE_RUN_STATES = frozenset({"starting", "running", "paused", "waiting"})
SHOW_COMMAND_CENTER_ENV = "STUDIO_SHOW_COMMAND_CENTER"
"""When ``1``, the window opens with the Command Center dock shown."""
STEER_TIMEOUT_S = 60.0
"""Seconds a pause, resume or stop from the window waits to take effect before it reports the request as pending."""
FOREIGN_RUN_POLL_MS = 1000
"""How often the store is read for new events of a shown run that another process executes.

NOTE: each read loads all events of the run, which gets slow for runs with very long journals."""
MAX_PROGRESS_LINES = 500
"""Live progress messages kept per step for the details panel (the journal does not keep them)."""


def example_paths(directory: Path = EXAMPLES_DIR) -> list[Path]:
    """Return the example workflow files in ``directory``, sorted by name (empty if it is missing)."""
    if not directory.is_dir():
        return []
    return sorted(path for path in directory.iterdir() if path.is_file() and path.name.endswith(".json"))


def _seeded_step_detail(data: dict[str, Any]) -> str:
    """Return the node detail of a step that a run took from a record instead of executing, else ''."""
    if data.get("pinned") is True:
        return "pinned output"
    source = data.get("reused_from")
    return f"reused from {source[:8]}" if isinstance(source, str) and source else ""


class MainWindow(QMainWindow):
    """Shows one workflow and one of its runs: live, or rebuilt from the store when picked in the runs list.

    ``store_path`` is the SQLite database the engine uses. None means the user data directory.
    ``recovery_dir`` is where unsaved drafts are kept for crash recovery; None means a ``recovery``
    folder beside the store. The open workflow is :attr:`document`, an :class:`EditorDocument`.
    The *shown run* is the run whose statuses the canvas, timeline, event log and details show,
    and which Pause, Resume and Stop act on: the run last started here, or the run selected in
    the runs list.
    """

    sig_workflow_opened = Signal(object)
    """Emitted with the :class:`Workflow` after it is shown."""
    sig_run_state_changed = Signal(str)
    """Emitted with the new state of the shown run: ``starting``, ``running``, ``paused``, ``waiting``,
    ``completed``, ``failed`` or ``stopped``."""
    sig_run_shown = Signal(str)
    """Emitted with the run id after a run's view was rebuilt from the store."""
    sig_run_stopped = Signal(str, list)
    """Emitted with the run id and the cancelled step keys when a stop asked for here has taken effect."""
    sig_error_shown = Signal(str)
    """Emitted with the message each time an error is shown to the user."""
    sig_window_closed = Signal()
    """Emitted when the window has been closed. No arguments."""

    def __init__(
        self, store_path: Path | None = None, parent: QWidget | None = None, *, recovery_dir: Path | None = None
    ) -> None:
        super().__init__(parent)
        self.resize(1440, 900)
        self.document = EditorDocument(parent=self)
        self.has_workflow = False
        self.last_error = ""
        self.last_stop_cancelled: list[str] = []
        self.run_state = "idle"
        self.shown_run_id: str | None = None
        self._tracker: RunStatusTracker | None = None
        self._run_started_at: float | None = None
        self._run_finished_at: float | None = None
        self._shown_events: list[RunEvent] = []
        self._shown_last_seq = 0
        self._progress: dict[str, list[LogLine]] = {}
        self._details_key: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._error_box: QMessageBox | None = None
        self._stop_box: QMessageBox | None = None
        self._input_dialog: RunInputDialog | None = None
        self._selecting_from_timeline = False

        self.scene = WorkflowScene(self)
        self.scene.set_document(self.document)
        self.view = CanvasView(self.scene, self)
        self.setCentralWidget(self.view)
        self._build_docks()

        self.controller = RunController(store_path, self)
        self.controller.sig_run_started.connect(self._on_controller_run_started)
        self.event_batcher = EventBatcher(self)
        self.event_batcher.sig_events_delivered.connect(self._on_event_batcher_delivered)
        # NOTE: the runs list needs the store from the start. RunController has no public way to open
        # its store and engine before a run, so the window calls its private _ensure_engine().
        self.engine: Engine = self.controller._ensure_engine()
        self.store: Store = self.engine.store
        self._unsubscribe: Callable[[], None] | None = self.engine.add_listener(self.event_batcher.push)
        self.runs_panel.is_live = self.engine.is_live
        self.runs_panel.set_store(self.store)

        self._build_actions()
        self.editor = install_editor_actions(self, recovery_dir or default_recovery_dir(store_path))
        self._build_menus()
        self._build_status_bar()
        self._build_command_center()
        self._connect_rerun_pins_compare()
        self.features = install_window_features(self)
        self._elapsed_timer = QTimer(self)
        self._elapsed_timer.setInterval(250)
        self._elapsed_timer.timeout.connect(self._on_elapsed_timer_timeout)
        # Events of runs that another process executes reach this window only through the store.
        self._foreign_run_timer = QTimer(self)
        self._foreign_run_timer.setInterval(FOREIGN_RUN_POLL_MS)
        self._foreign_run_timer.timeout.connect(self._poll_shown_run)
        self._foreign_run_timer.start()
        self.update_title()
        self._update_actions()
        QTimer.singleShot(0, self.editor.offer_recovery)

    @property
    def workflow(self) -> Workflow | None:
        """The open workflow (the document's current content), or None before one is opened."""
        return self.document.workflow if self.has_workflow else None

    @property
    def workflow_path(self) -> Path | None:
        """The file of the open workflow, or None for a workflow that was never saved."""
        return self.document.path

    # -- construction ----------------------------------------------------------------------

    def _build_docks(self) -> None:
        self.event_log = EventLogPanel(self)
        self._event_dock = self._add_dock("Event log", "event-log-dock", self.event_log,
                                          Qt.DockWidgetArea.BottomDockWidgetArea)
        self.timeline = TimelineWidget(self)
        self.timeline.sig_segment_clicked.connect(self._on_timeline_segment_clicked)
        self._timeline_dock = self._add_dock("Timeline", "timeline-dock", self.timeline,
                                             Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self._timeline_dock, self._event_dock)
        self._timeline_dock.raise_()
        self.runs_panel = RunsPanel(self)
        self.runs_panel.sig_run_selected.connect(self._on_runs_panel_run_selected)
        self._runs_dock = self._add_dock("Runs", "runs-dock", self.runs_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.step_details = StepDetailsPanel(self)
        self._details_dock = self._add_dock("Step details", "step-details-dock", self.step_details,
                                            Qt.DockWidgetArea.RightDockWidgetArea)
        self._docks_sized = False
        self.scene.selectionChanged.connect(self._on_scene_selection_changed)

    def _add_dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_actions(self) -> None:
        self.action_open = QAction("&Open…", self, shortcut=QKeySequence(QKeySequence.StandardKey.Open))
        self.action_open.triggered.connect(self._on_open_triggered)
        self.action_quit = QAction("&Quit", self, shortcut=QKeySequence(QKeySequence.StandardKey.Quit))
        self.action_quit.triggered.connect(self.close)
        self.action_run = QAction("&Run", self, shortcut=QKeySequence("Ctrl+R"))
        self.action_run.triggered.connect(self._on_run_triggered)
        self.action_pause = QAction("&Pause", self)
        self.action_pause.triggered.connect(lambda: self._spawn(self.pause_run()))
        self.action_resume = QAction("Res&ume", self)
        self.action_resume.triggered.connect(lambda: self._spawn(self.resume_run()))
        self.action_stop = QAction("&Stop", self)
        self.action_stop.triggered.connect(self.confirm_stop)
        self.action_test_run = QAction("&Test run (with pins)", self)
        self.action_test_run.setToolTip("Run the open workflow as a test run in which pinned steps return their pinned output")
        self.action_test_run.triggered.connect(self._on_test_run_triggered)
        self.action_fit = QAction("Zoom to &fit", self)
        self.action_fit.setToolTip("Zoom to fit (F)")
        self.action_fit.triggered.connect(self.view.zoom_to_fit)
        self.action_zoom_in = QAction("Zoom &in", self, shortcut=QKeySequence(QKeySequence.StandardKey.ZoomIn))
        self.action_zoom_in.triggered.connect(lambda: self.view.zoom_by(1.25))
        self.action_zoom_out = QAction("Zoom &out", self, shortcut=QKeySequence(QKeySequence.StandardKey.ZoomOut))
        self.action_zoom_out.triggered.connect(lambda: self.view.zoom_by(0.8))

    def _build_menus(self) -> None:
        file_menu = self.file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.action_open)
        self.examples_menu = QMenu("Open &example", self)
        file_menu.addMenu(self.examples_menu)
        self._fill_examples_menu()
        file_menu.addSeparator()
        file_menu.addAction(self.action_quit)
        self.editor.fill_file_menu(before=self.action_open)
        self.edit_menu = self.menuBar().addMenu("&Edit")
        self.editor.fill_edit_menu()
        run_menu = self.menuBar().addMenu("&Run")
        for action in (self.action_run, self.action_pause, self.action_resume, self.action_stop):
            run_menu.addAction(action)
        run_menu.addSeparator()
        run_menu.addAction(self.action_test_run)
        view_menu = self.menuBar().addMenu("&View")
        for action in (self.action_fit, self.action_zoom_in, self.action_zoom_out):
            view_menu.addAction(action)
        for dock in (self._runs_dock, self._timeline_dock, self._details_dock, self._event_dock, self.editor.history_dock):
            view_menu.addAction(dock.toggleViewAction())
        self.tabifyDockWidget(self._details_dock, self.editor.history_dock)
        self._details_dock.raise_()

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.addAction(self.action_open)
        toolbar.addSeparator()
        for action in (self.action_run, self.action_pause, self.action_resume, self.action_stop):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.action_fit)

    def _fill_examples_menu(self) -> None:
        self.examples_menu.clear()
        paths = example_paths()
        if not paths:
            placeholder = self.examples_menu.addAction(f"No examples in {EXAMPLES_DIR}")
            placeholder.setEnabled(False)
            return
        for path in paths:
            action = self.examples_menu.addAction(path.name.removesuffix(".json").removesuffix(".workflow"))
            action.setToolTip(str(path))
            action.triggered.connect(lambda _checked=False, p=path: self._open_after_asking(p))

    def _build_status_bar(self) -> None:
        self.run_status_label = QLabel("No run", self)
        self.elapsed_label = QLabel("", self)
        self.statusBar().addPermanentWidget(self.run_status_label)
        self.statusBar().addPermanentWidget(self.elapsed_label)

    # -- opening workflows -----------------------------------------------------------------

    def open_workflow(self, path: str | Path) -> bool:
        """Load and show the workflow file at ``path``. On failure, show the error and keep the current one."""
        if self.run_state in ACTIVE_RUN_STATES:
            self.show_error("Cannot open a workflow", "A run is in progress; stop it before opening another workflow.")
            return False
        try:
            workflow = load_workflow(path)
        except DocumentError as error:
            logger.warning("cannot open workflow %s: %s", path, error)
            self.show_error("Cannot open the workflow", str(error))
            return False
        self.set_workflow(workflow, Path(path))
        self.statusBar().showMessage(f"Opened {path}", 5000)
        return True

    def set_workflow(self, workflow: Workflow, path: Path | None = None) -> None:
        """Open ``workflow`` as the document (replacing the current one without asking) and reset the run display."""
        self.show_document(workflow, path)

    def show_document(self, workflow: Workflow, path: Path | None = None, *, dirty: bool = False) -> None:
        """Load ``workflow`` into the document (``dirty`` for a restored draft) and reset the run display."""
        self._show_workflow(workflow, path, dirty=dirty)
        self._clear_run_display()
        self._set_run_state("idle")

    def _show_workflow(self, workflow: Workflow, path: Path | None, *, dirty: bool = False) -> None:
        self.has_workflow = True
        self.document.load(workflow, path, dirty=dirty)
        self.update_title()
        QTimer.singleShot(0, self.view.zoom_to_fit)
        logger.info("showing workflow %s (%s) from %s", workflow.name, workflow.id, path or "memory")
        self.sig_workflow_opened.emit(workflow)

    def _on_open_triggered(self) -> None:
        if not self.editor.maybe_save_changes():
            return
        start = str(self.workflow_path.parent) if self.workflow_path else str(EXAMPLES_DIR)
        path, _filter = QFileDialog.getOpenFileName(self, "Open workflow", start, FILE_FILTER)
        if path:
            self.open_workflow(path)

    def _open_after_asking(self, path: Path) -> None:
        if self.editor.maybe_save_changes():
            self.open_workflow(path)

    # -- running ---------------------------------------------------------------------------

    def _on_run_triggered(self) -> None:
        self._ask_inputs_then(self.start_run)

    def _ask_inputs_then(
        self, start: Callable[[dict[str, JsonValue] | None], Coroutine[Any, Any, str | None]]
    ) -> None:
        """Call ``start`` with run inputs, first asking for required inputs that have no default."""
        if self.workflow is None or self.run_state in ACTIVE_RUN_STATES:
            return
        if not required_inputs_missing(self.workflow):
            self._spawn(start(None))
            return
        dialog = RunInputDialog(self.workflow, self)
        dialog.accepted.connect(lambda: self._spawn(start(dialog.values())))
        dialog.finished.connect(dialog.deleteLater)
        self._input_dialog = dialog
        dialog.open()

    async def start_run(self, inputs: dict[str, JsonValue] | None = None) -> str | None:
        """Run the shown workflow with ``inputs`` (defaults fill the rest) and return the run id, or None on error."""
        if self.workflow is None:
            self.show_error("Nothing to run", "Open a workflow first.")
            return None
        if self.run_state in ACTIVE_RUN_STATES:
            self.show_error("A run is in progress", "Wait for the current run to finish, or stop it.")
            return None
        self._clear_run_display()
        self._tracker = RunStatusTracker(self.workflow)
        self._run_started_at = time.time()
        self._set_run_state("starting")
        self._elapsed_timer.start()
        try:
            return await self.controller.start(self.document.snapshot(), dict(inputs or {}))
        except Exception as error:  # the engine and store raise many kinds, and the user must see each one
            logger.exception("starting a run of workflow %s failed", self.workflow.id)
            self._set_run_state("failed")
            self.show_error("The run could not start", str(error))
            return None

    def _on_controller_run_started(self, run_id: str) -> None:
        # The engine announced run_created before this, but the batcher delivers it only on its
        # next timer tick, so every event of the new run reaches the display set up here.
        self.shown_run_id = run_id
        self.timeline.set_model(TimelineModel(run_id))
        self.runs_panel.select_run(run_id, notify=False)
        self._update_actions()

    async def pause_run(self) -> None:
        await self._steer("pause")

    async def resume_run(self) -> None:
        await self._steer("resume")

    async def stop_run(self) -> None:
        """Stop the shown run at once (the Stop action shows a confirmation first, see :meth:`confirm_stop`)."""
        await self._steer("stop")

    def confirm_stop(self) -> QMessageBox | None:
        """Ask whether to stop the shown run; a Yes stops it. Return the (non-blocking) message box."""
        run_id = self.shown_run_id
        if run_id is None:
            return None
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Stop the run?",
            f"Stop run {run_id[:8]}? Running steps are cancelled and steps not started yet never run. "
            "A stopped run cannot be resumed.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.accepted.connect(lambda: self._spawn(self.stop_run()))
        box.finished.connect(box.deleteLater)
        box.open()
        self._stop_box = box
        return box

    async def _steer(self, verb: str) -> None:
        """Pause, resume or stop the shown run wherever it executes, and wait until that took effect.

        A run of another live process gets a request that its owner applies. A run that no live
        process executes is adopted by this window's engine.
        """
        run_id = self.shown_run_id
        if run_id is None:
            return
        self.statusBar().showMessage(f"Requested {verb} of run {run_id[:8]}…", 10000)
        try:
            outcome = await control_run(self.engine, run_id, verb, actor="studio window", timeout_s=STEER_TIMEOUT_S)
        except ControlTimeout as error:
            # Not a failure: the request stays recorded and takes effect when the running steps finish.
            logger.info("%s of run %s is still pending: %s", verb, run_id, error)
            self.statusBar().showMessage(str(error), 30000)
            return
        except Exception as error:  # shown to the user: pausing an already finished run, for example
            logger.warning("cannot %s run %s: %s", verb, run_id, error)
            self.show_error(f"Cannot {verb} the run", str(error))
            return
        if verb == "stop":
            self._on_run_stopped(run_id, outcome.cancelled)
        else:
            self.statusBar().showMessage(f"Run {run_id[:8]} is {outcome.status}", 10000)
        if not self.engine.is_live(run_id):
            self._poll_shown_run()

    def _foreign_owner(self) -> str | None:
        """Return the owner of the shown run when another live process executes it, else None."""
        if self.shown_run_id is None or self.engine.is_live(self.shown_run_id):
            return None
        record = self._run_record(self.shown_run_id)
        if record is None or record.owner is None or record.owner == self.engine.owner:
            return None
        return record.owner if self.engine.owner_alive(record) else None

    def _poll_shown_run(self) -> None:
        """Show the new journaled events of a shown run that another process executes."""
        run_id = self.shown_run_id
        if run_id is None or self.engine.is_live(run_id):
            return
        # A run of this engine that just ended is no longer live, but its last events may still wait
        # in the batcher. Deliver them first: the store lacks the progress events among them, and
        # reading past them here would make the batcher's copy look old and drop it.
        self.event_batcher.flush()
        if self.run_state not in ACTIVE_RUN_STATES:
            return
        rows = [row for row in self.store.events(run_id) if int(row["seq"]) > self._shown_last_seq]
        events = [event for event in map(run_event_from_row, rows) if event is not None]
        if events:
            self._apply_shown_events(events)

    def _run_record(self, run_id: str) -> RunRecord | None:
        from studio.store import StoreError

        try:
            return self.store.get_run(run_id)
        except StoreError as error:
            logger.warning("cannot read run %s: %s", run_id, error)
            return None

    # -- showing a run ---------------------------------------------------------------------

    def _clear_run_display(self) -> None:
        self.shown_run_id = None
        self._tracker = None
        self._shown_events = []
        self._shown_last_seq = 0
        self._progress.clear()
        self._details_key = None
        self._run_started_at = self._run_finished_at = None
        self.scene.reset_statuses()
        self.event_log.clear()
        self.timeline.set_model(TimelineModel())
        self.step_details.clear()

    def _on_runs_panel_run_selected(self, run_id: str) -> None:
        if run_id != self.shown_run_id:
            self.show_run(run_id)

    def show_run(self, run_id: str) -> bool:
        """Rebuild the canvas statuses, timeline and event log of ``run_id`` from the store; return success."""
        record = self._run_record(run_id)
        if record is None:
            self.show_error("Cannot show the run", f"run {run_id} is not in the store; it may have been deleted")
            return False
        try:
            workflow = self.store.get_version(record.version_id).workflow
        except Exception as error:  # a stored document this version cannot read must not break the window
            logger.exception("cannot load the workflow of run %s", run_id)
            self.show_error("Cannot show the run", f"the workflow version of run {run_id} cannot be read: {error}")
            return False
        same_workflow = self.workflow is not None and self.workflow.id == workflow.id
        if self.has_workflow and self.document.is_dirty():
            if not same_workflow:
                self.show_error(
                    "Cannot show the run",
                    f"The workflow '{self.document.workflow.name}' has unsaved changes. Save or revert them "
                    f"before showing run {run_id[:8]} of workflow '{workflow.name}'.",
                )
                return False
            # The draft stays on the canvas; the run's statuses are shown on the steps it still has.
        elif not (same_workflow and content_hash(self.document.workflow) == content_hash(workflow)):
            # A run of the open content keeps the document and its undo history; other runs show their version.
            self._show_workflow(workflow, self.workflow_path if same_workflow else None)
        self._clear_run_display()
        self.shown_run_id = run_id
        self._tracker = RunStatusTracker(workflow)
        self._run_started_at = record.created_at
        self._run_finished_at = record.finished_at
        events = [event for event in map(run_event_from_row, self.store.events(run_id)) if event is not None]
        self.timeline.set_model(TimelineModel(run_id))
        self._apply_shown_events(events)
        if record.status not in TERMINAL_RUN_STATES and self._tracker.run_state in TERMINAL_RUN_STATES | {"idle"}:
            self._set_run_state(record.status)
        self.runs_panel.select_run(run_id, notify=False)
        logger.info("showing run %s of workflow %s with %d recorded events", run_id, workflow.id, len(events))
        self.sig_run_shown.emit(run_id)
        return True

    def _on_event_batcher_delivered(self, events: list[RunEvent]) -> None:
        self.runs_panel.apply_events(events)
        if any(event.type == EventType.RUN_CREATED and event.run_id == self.shown_run_id for event in events):
            self.runs_panel.select_run(str(self.shown_run_id), notify=False)
        shown = [event for event in events if event.run_id == self.shown_run_id and event.seq > self._shown_last_seq]
        if shown:
            self._apply_shown_events(shown)

    def _apply_shown_events(self, events: list[RunEvent]) -> None:
        """Show a batch of the shown run's events on every panel, repainting each panel once."""
        following = self.event_log.is_following()
        latest: dict[str, StatusUpdate] = {}
        seeded: dict[str, str] = {}
        touched_details = False

        for event in events:
            self._shown_last_seq = max(self._shown_last_seq, event.seq)
            if not event.is_ephemeral:
                # Streaming events would grow this list without bound; progress lines are kept below.
                self._shown_events.append(event)
            self.event_log.model.append_event(event)
            if self._tracker is not None:
                for update in self._tracker.apply(event):
                    latest[update.step_id] = update
            if event.type == EventType.STEP_COMPLETED and event.step_key is not None and event.step_key == event.step_id:
                mark = _seeded_step_detail(event.data)
                if mark:
                    seeded[event.step_key] = mark
            if event.type == EventType.STEP_PROGRESS and event.step_key is not None:
                lines = self._progress.setdefault(event.step_key, [])
                lines.append(progress_line(event.at, event.data))
                del lines[:-MAX_PROGRESS_LINES]
            touched_details = touched_details or event.step_key == self._details_key or event.step_key is None
            self.timeline.model.apply(event)
            if event.type == EventType.RUN_CREATED:
                self._run_started_at = event.at

        if following:
            self.event_log.table.scrollToBottom()
        for update in latest.values():
            self.scene.set_step_status(update.step_id, update.status, update.detail)
        for step_id, mark in seeded.items():
            self.scene.set_step_status(step_id, "completed", mark)
        self.timeline.refresh()
        if touched_details and self._details_key is not None:
            self.show_step_details(self._details_key)

        last = events[-1]
        if last.type in (EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_STOPPED):
            self._run_finished_at = last.at
        if self._tracker is not None and self._tracker.run_state != self.run_state:
            self._set_run_state(self._tracker.run_state)

    def _on_run_stopped(self, run_id: str, cancelled: list[str]) -> None:
        self.last_stop_cancelled = list(cancelled)
        text = ", ".join(cancelled) if cancelled else "none (no step was running)"
        self.statusBar().showMessage(f"Run {run_id[:8]} stopped. Cancelled steps: {text}", 30000)
        self.sig_run_stopped.emit(run_id, list(cancelled))

    # -- step selection and details --------------------------------------------------------

    def _on_timeline_segment_clicked(self, step_key: str, step_id: str) -> None:
        self._selecting_from_timeline = True
        try:
            self.scene.clearSelection()
            item = self.scene.node_item(step_id)
            if item is not None:
                item.setSelected(True)
                self.view.ensureVisible(item)
        finally:
            self._selecting_from_timeline = False
        self.show_step_details(step_key)

    def _on_scene_selection_changed(self) -> None:
        if self._selecting_from_timeline or self.shown_run_id is None:
            return
        selected = [item for item in self.scene.selectedItems() if isinstance(item, NodeItem)]
        if len(selected) != 1:
            return
        step_id = selected[0].step_id
        keys = [key for key in self.timeline.model.segments if step_id_of(key) == step_id]
        if keys:
            key = step_id if step_id in keys else keys[-1]
            self.timeline.selected_key = key
            self.timeline.update()
            self.show_step_details(key)

    def show_step_details(self, step_key: str) -> None:
        """Show the details of ``step_key`` of the shown run, read from the store and the events so far."""
        run_id = self.shown_run_id
        if run_id is None:
            return
        self._details_key = step_key
        record = self.store.step_runs(run_id).get(step_key)
        usage = self.store.usage(run_id) if record is not None and record.step_type == "llm_call" else []
        details = build_step_details(
            run_id, step_key, record, self._shown_events, usage, self._progress.get(step_key, ())
        )
        self.step_details.show_details(details)
        self._update_step_actions()
        self._details_dock.raise_()

    # -- re-runs, pins and run comparison --------------------------------------------------

    def _connect_rerun_pins_compare(self) -> None:
        self.step_details.sig_rerun_requested.connect(
            lambda run_id, step_id: self._spawn(self.rerun_from_step(run_id, step_id))
        )
        self.step_details.sig_pin_requested.connect(self.pin_step_output)
        self.step_details.sig_unpin_requested.connect(self.unpin_step)
        self.runs_panel.sig_rerun_requested.connect(self.ask_rerun_step)
        self.runs_panel.sig_compare_requested.connect(self.show_comparison)
        self.sig_workflow_opened.connect(lambda _workflow: self._refresh_pin_markers())
        self.compare_dialog: CompareDialog | None = None
        self._rerun_dialog: QInputDialog | None = None

    def _update_step_actions(self) -> None:
        details = self.step_details.details
        if details is None:
            return
        # Pins replace whole top-level steps, so steps inside a for_each body cannot be pinned.
        top_level = details.step_key == details.step_id
        pinned = top_level and details.step_id in self.scene.pinned_steps()
        self.step_details.set_step_actions(
            rerun=self.run_state in TERMINAL_RUN_STATES,
            pin=top_level and details.status == "completed",
            unpin=pinned,
        )

    async def rerun_from_step(self, run_id: str, step_id: str) -> str | None:
        """Start a re-run of ``run_id`` from ``step_id`` and show it live. Return the new run id, or None on error."""
        try:
            new_run_id = await self.engine.rerun_from(run_id, step_id)
        except Exception as error:  # EngineError and StoreError messages name the step and the fix
            logger.warning("cannot re-run run %s from step %s: %s", run_id, step_id, error)
            self.show_error("Cannot re-run from this step", str(error))
            return None
        self.show_run(new_run_id)
        self.statusBar().showMessage(f"Re-running run {run_id[:8]} from step {step_id} as run {new_run_id[:8]}", 10000)
        return new_run_id

    def ask_rerun_step(self, run_id: str) -> QInputDialog | None:
        """Ask which step to re-run ``run_id`` from (a non-blocking dialog) and start the re-run on OK."""
        record = self._run_record(run_id)
        if record is None:
            self.show_error("Cannot re-run the run", f"run {run_id} is not in the store; it may have been deleted")
            return None
        step_ids: list[str] = []
        for step in self.store.get_version(record.version_id).workflow.steps:
            step_ids.append(step.id)
            if isinstance(step, ForEachStep):
                step_ids.extend(body.id for body in step.config.steps)
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Re-run from a step")
        dialog.setLabelText(f"Re-run run {run_id[:8]} from this step (upstream results are reused):")
        dialog.setComboBoxItems(step_ids)
        dialog.setComboBoxEditable(False)
        dialog.textValueSelected.connect(lambda step_id: self._spawn(self.rerun_from_step(run_id, step_id)))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        self._rerun_dialog = dialog
        return dialog

    def _on_test_run_triggered(self) -> None:
        self._ask_inputs_then(self.start_test_run)

    async def start_test_run(self, inputs: dict[str, JsonValue] | None = None) -> str | None:
        """Run the open workflow as a test run with its stored pins and show it. Return the run id, or None on error."""
        if self.workflow is None:
            self.show_error("Nothing to run", "Open a workflow first.")
            return None
        if self.run_state in ACTIVE_RUN_STATES:
            self.show_error("A run is in progress", "Wait for the current run to finish, or stop it.")
            return None
        try:
            run_id = await self.engine.start_test_run(self.document.snapshot(), inputs)
        except Exception as error:  # the engine and store raise many kinds, and the user must see each one
            logger.warning("cannot start a test run of workflow %s: %s", self.workflow.id, error)
            self.show_error("The test run could not start", str(error))
            return None
        self.show_run(run_id)
        return run_id

    def pin_step_output(self, run_id: str, step_id: str) -> bool:
        """Pin the output ``step_id`` recorded in ``run_id`` for test runs of its workflow. Return False on error."""
        try:
            self.store.pin_from_run(run_id, step_id)
        except Exception as error:  # StoreError and NotFoundError messages name the step and the fix
            logger.warning("cannot pin step %s of run %s: %s", step_id, run_id, error)
            self.show_error("Cannot pin the output", str(error))
            return False
        self._after_pins_changed(f"Pinned the output of step {step_id} from run {run_id[:8]}")
        return True

    def unpin_step(self, step_id: str) -> bool:
        """Remove the pin of ``step_id`` in the open workflow. Return False when it had none."""
        if self.workflow is None:
            return False
        removed = self.store.clear_pin(self.workflow.id, step_id)
        self._after_pins_changed(f"Removed the pin of step {step_id}" if removed else f"Step {step_id} had no pin")
        return removed

    def _after_pins_changed(self, message: str) -> None:
        self._refresh_pin_markers()
        self.statusBar().showMessage(message, 10000)
        if self._details_key is not None:
            self.show_step_details(self._details_key)

    def _refresh_pin_markers(self) -> None:
        if self.workflow is None:
            return
        try:
            pinned = set(self.store.pins(self.workflow.id))
        except Exception as error:  # a store that cannot be read must not break showing the workflow
            logger.warning("cannot read the pins of workflow %s: %s", self.workflow.id, error)
            pinned = set()
        self.scene.set_pinned_steps(pinned)

    def show_comparison(self, run_a: str, run_b: str) -> CompareDialog | None:
        """Open a view that compares ``run_a`` with ``run_b`` step by step. Show the error and return None on failure."""
        from studio.store import StoreError

        try:
            comparison = compare_runs(self.store, run_a, run_b)
        except (CompareError, StoreError) as error:
            logger.info("cannot compare runs %s and %s: %s", run_a, run_b, error)
            self.show_error("Cannot compare the runs", str(error))
            return None
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        dialog = CompareDialog(comparison, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(lambda: setattr(self, "compare_dialog", None))
        dialog.show()
        self.compare_dialog = dialog
        return dialog

    # -- run state -------------------------------------------------------------------------

    def _set_run_state(self, state: str) -> None:
        self.run_state = state
        if state in TERMINAL_RUN_STATES:
            if self._run_finished_at is None:
                self._run_finished_at = time.time()
            self._elapsed_timer.stop()
        elif state in ACTIVE_RUN_STATES:
            self._elapsed_timer.start()
        text = "No run" if state == "idle" else f"Run {state}"
        if state == "failed" and self._tracker is not None and self._tracker.error:
            text += f": {self._tracker.error}"
        self.run_status_label.setText(text)
        self._on_elapsed_timer_timeout()
        self._update_actions()
        self._update_step_actions()
        self.sig_run_state_changed.emit(state)

    def _on_elapsed_timer_timeout(self) -> None:
        if self._run_started_at is None or self.run_state == "idle":
            self.elapsed_label.setText("")
            return
        end = self._run_finished_at if self._run_finished_at is not None else time.time()
        self.elapsed_label.setText(format_duration(max(end - self._run_started_at, 0.0)))

    def _update_actions(self) -> None:
        state = self.run_state
        self.action_run.setEnabled(self.workflow is not None and state not in ACTIVE_RUN_STATES)
        self.action_test_run.setEnabled(self.action_run.isEnabled())
        owner = self._foreign_owner() if state in ACTIVE_RUN_STATES else None
        has_run = self.shown_run_id is not None
        self.action_pause.setEnabled(has_run and state in ("starting", "running", "waiting"))
        self.action_resume.setEnabled(has_run and state == "paused")
        self.action_stop.setEnabled(has_run and state in ACTIVE_RUN_STATES)
        for action, verb in ((self.action_pause, "Pause"), (self.action_resume, "Resume"), (self.action_stop, "Stop")):
            if owner is None:
                action.setToolTip(f"{verb} the shown run")
            else:
                action.setToolTip(f"{verb} the shown run: another studio process ({owner}) executes it and applies the request")

    def update_title(self) -> None:
        """Show the workflow name in the title, with ``*`` while it has unsaved changes."""
        name = self.workflow.name if self.workflow is not None else "No workflow"
        # Qt replaces "[*]" with "*" while the window is modified and hides it otherwise.
        self.setWindowTitle(f"{name}[*] — Workflow Studio")
        self.setWindowModified(self.has_workflow and self.document.is_dirty())

    # -- Command Center (start) -------------------------------------------------------------

    def _build_command_center(self) -> None:
        """Add the Command Center dock, its action with the pending-task count, and its engine wiring."""
        self.command_center = CommandCenterPanel(self)
        self._command_center_dock = QDockWidget("Command Center", self)
        self._command_center_dock.setObjectName("command-center-dock")
        self._command_center_dock.setWidget(self.command_center)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self._command_center_dock)
        self._command_center_dock.hide()
        self.action_command_center = QAction(badge_text(0), self, shortcut=QKeySequence("Ctrl+Shift+T"))
        self.action_command_center.setToolTip("Show the pending human tasks of all runs (Ctrl+Shift+T)")
        self.action_command_center.triggered.connect(self.show_command_center)
        tasks_menu = self.menuBar().addMenu("&Tasks")
        tasks_menu.addAction(self.action_command_center)
        tasks_menu.addAction(self._command_center_dock.toggleViewAction())
        toolbar = self.findChild(QToolBar, "main-toolbar")
        if isinstance(toolbar, QToolBar):
            toolbar.addSeparator()
            toolbar.addAction(self.action_command_center)
        self.command_center.sig_pending_count_changed.connect(self._on_command_center_count_changed)
        self.command_center.sig_show_requested.connect(self.show_command_center)
        self.command_center.notifier.sig_notified.connect(self._on_command_center_notified)
        self.command_center.set_engine_provider(lambda: self.controller.engine)
        if os.environ.get(SHOW_COMMAND_CENTER_ENV) == "1":
            self.show_command_center()

    def show_command_center(self) -> None:
        """Show and raise the Command Center dock, as a tab over another right-hand dock if there is one."""
        dock = self._command_center_dock
        if dock.isHidden() and not self.tabifiedDockWidgets(dock):
            neighbours = [
                other
                for other in self.findChildren(QDockWidget)
                if other is not dock and not other.isHidden() and not other.isFloating()
                and self.dockWidgetArea(other) == Qt.DockWidgetArea.RightDockWidgetArea
            ]
            if neighbours:
                self.tabifyDockWidget(neighbours[0], dock)
        dock.show()
        dock.raise_()
        # A dock tabified before the window is first laid out only comes to the front after that layout.
        QTimer.singleShot(0, dock.raise_)
        self.resizeDocks([dock], [max(560, self.width() // 2)], Qt.Orientation.Horizontal)

    def _on_command_center_count_changed(self, count: int) -> None:
        self.action_command_center.setText(badge_text(count))

    def _on_command_center_notified(self, message: str, shown: bool) -> None:
        if not shown:
            self.statusBar().showMessage(f"New human task: {message}", 10000)

    # -- Command Center (end) ---------------------------------------------------------------

    # -- errors, tasks and closing ---------------------------------------------------------

    def show_error(self, title: str, message: str) -> None:
        """Show ``message`` in the status bar and in a message box that does not block the event loop."""
        self.last_error = message
        self.statusBar().showMessage(message.splitlines()[0] if message else title, 15000)
        if self._error_box is not None:
            self._error_box.close()
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self._error_box = box
        self.sig_error_shown.emit(message)

    def error_box(self) -> QMessageBox | None:
        """Return the message box of the last error, if one is open."""
        return self._error_box

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)
        return task

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("background task failed: %s", error, exc_info=error)
            self.show_error("Unexpected error", str(error))

    async def aclose(self) -> None:
        """Close the engine. Call it before the event loop ends.

        An active run is detached, not stopped: the engine keeps it resumable from the store.
        """
        for task in list(self._tasks):
            task.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.event_batcher.clear()
        self._foreign_run_timer.stop()
        self.runs_panel.stop_polling()
        self.command_center.close_panel()
        await self.controller.aclose()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._docks_sized:
            # Dock sizes only stick once the window has its real size, so the first show sets them.
            self._docks_sized = True
            self.resizeDocks([self._timeline_dock], [max(260, int(self.height() * 0.35))], Qt.Orientation.Vertical)
            # The canvas is the main work area, so the side docks start narrow.
            side = max(300, self.width() // 5)
            self.resizeDocks([self._runs_dock, self._details_dock], [side, side], Qt.Orientation.Horizontal)
            QTimer.singleShot(0, self.view.zoom_to_fit)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.editor.maybe_save_changes():
            event.ignore()
            return
        super().closeEvent(event)
        if event.isAccepted():
            self.sig_window_closed.emit()
