"""The studio main window: workflow canvas, run controls, event log dock and run status bar."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QMenu, QMessageBox, QWidget

from studio.app.input_dialog import RunInputDialog, required_inputs_missing
from studio.app.run_controller import RunController
from studio.app.run_status import TERMINAL_RUN_STATES, RunStatusTracker, format_duration
from studio.canvas import CanvasView, WorkflowScene
from studio.canvas.icons import RESOURCES_DIR
from studio.engine.events import RunEvent
from studio.model.document import DocumentError, load_workflow
from studio.model.workflow import JsonValue, Workflow
from studio.panels.event_log import EventLogPanel

logger = logging.getLogger(__name__)

EXAMPLES_DIR = RESOURCES_DIR / "examples"
FILE_FILTER = "Workflow files (*.workflow.json *.json);;All files (*)"
ACTIVE_RUN_STATES = frozenset({"starting", "running", "paused", "waiting"})


def example_paths(directory: Path = EXAMPLES_DIR) -> list[Path]:
    """Return the example workflow files in ``directory``, sorted by name (empty if it is missing)."""
    if not directory.is_dir():
        return []
    return sorted(path for path in directory.iterdir() if path.is_file() and path.name.endswith(".json"))


class MainWindow(QMainWindow):
    """Shows one workflow read-only and runs it with live step statuses.

    ``store_path`` is the SQLite database the engine uses. None means the user data directory.
    """

    sig_workflow_opened = Signal(object)
    """Emitted with the :class:`Workflow` after it is shown."""
    sig_run_state_changed = Signal(str)
    """Emitted with the new run state: ``starting``, ``running``, ``paused``, ``waiting``,
    ``completed``, ``failed`` or ``stopped``."""
    sig_error_shown = Signal(str)
    """Emitted with the message each time an error is shown to the user."""
    sig_window_closed = Signal()
    """Emitted when the window has been closed. No arguments."""

    def __init__(self, store_path: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.resize(1280, 800)
        self.workflow: Workflow | None = None
        self.workflow_path: Path | None = None
        self.last_error = ""
        self.run_state = "idle"
        self._tracker: RunStatusTracker | None = None
        self._run_started_at: float | None = None
        self._run_finished_at: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._error_box: QMessageBox | None = None
        self._input_dialog: RunInputDialog | None = None

        self.scene = WorkflowScene(self)
        self.view = CanvasView(self.scene, self)
        self.setCentralWidget(self.view)
        self.event_log = EventLogPanel(self)
        self._event_dock = QDockWidget("Event log", self)
        self._event_dock.setObjectName("event-log-dock")
        self._event_dock.setWidget(self.event_log)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self._event_dock)

        self.controller = RunController(store_path, self)
        self.controller.sig_event_received.connect(self._on_controller_event_received)

        self._build_actions()
        self._build_menus()
        self._build_status_bar()
        self._elapsed_timer = QTimer(self)
        self._elapsed_timer.setInterval(250)
        self._elapsed_timer.timeout.connect(self._on_elapsed_timer_timeout)
        self._update_title()
        self._update_actions()

    # -- construction ----------------------------------------------------------------------

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
        self.action_stop.triggered.connect(lambda: self._spawn(self.stop_run()))
        self.action_fit = QAction("Zoom to &fit", self)
        self.action_fit.setToolTip("Zoom to fit (F)")
        self.action_fit.triggered.connect(self.view.zoom_to_fit)
        self.action_zoom_in = QAction("Zoom &in", self, shortcut=QKeySequence(QKeySequence.StandardKey.ZoomIn))
        self.action_zoom_in.triggered.connect(lambda: self.view.zoom_by(1.25))
        self.action_zoom_out = QAction("Zoom &out", self, shortcut=QKeySequence(QKeySequence.StandardKey.ZoomOut))
        self.action_zoom_out.triggered.connect(lambda: self.view.zoom_by(0.8))

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.action_open)
        self.examples_menu = QMenu("Open &example", self)
        file_menu.addMenu(self.examples_menu)
        self._fill_examples_menu()
        file_menu.addSeparator()
        file_menu.addAction(self.action_quit)
        run_menu = self.menuBar().addMenu("&Run")
        for action in (self.action_run, self.action_pause, self.action_resume, self.action_stop):
            run_menu.addAction(action)
        view_menu = self.menuBar().addMenu("&View")
        for action in (self.action_fit, self.action_zoom_in, self.action_zoom_out):
            view_menu.addAction(action)
        view_menu.addAction(self._event_dock.toggleViewAction())

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
            action.triggered.connect(lambda _checked=False, p=path: self.open_workflow(p))

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
        """Show ``workflow`` on the canvas and reset the run display."""
        self.workflow = workflow
        self.workflow_path = path
        self.scene.set_workflow(workflow)
        self._tracker = None
        self._set_run_state("idle")
        self._update_title()
        QTimer.singleShot(0, self.view.zoom_to_fit)
        logger.info("showing workflow %s (%s) from %s", workflow.name, workflow.id, path or "memory")
        self.sig_workflow_opened.emit(workflow)

    def _on_open_triggered(self) -> None:
        start = str(self.workflow_path.parent) if self.workflow_path else str(EXAMPLES_DIR)
        path, _filter = QFileDialog.getOpenFileName(self, "Open workflow", start, FILE_FILTER)
        if path:
            self.open_workflow(path)

    # -- running ---------------------------------------------------------------------------

    def _on_run_triggered(self) -> None:
        if self.workflow is None or self.run_state in ACTIVE_RUN_STATES:
            return
        if not required_inputs_missing(self.workflow):
            self._spawn(self.start_run())
            return
        dialog = RunInputDialog(self.workflow, self)
        dialog.accepted.connect(lambda: self._spawn(self.start_run(dialog.values())))
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
        self.scene.reset_statuses()
        self.event_log.clear()
        self._tracker = RunStatusTracker(self.workflow)
        self._run_started_at = time.monotonic()
        self._run_finished_at = None
        self._set_run_state("starting")
        self._elapsed_timer.start()
        try:
            return await self.controller.start(self.workflow, dict(inputs or {}))
        except Exception as error:  # the engine and store raise many kinds, and the user must see each one
            logger.exception("starting a run of workflow %s failed", self.workflow.id)
            self._set_run_state("failed")
            self.show_error("The run could not start", str(error))
            return None

    async def pause_run(self) -> None:
        await self._steer(self.controller.pause, "pause")

    async def resume_run(self) -> None:
        await self._steer(self.controller.resume, "resume")

    async def stop_run(self) -> None:
        await self._steer(self.controller.stop, "stop")

    async def _steer(self, command: Any, verb: str) -> None:
        try:
            await command()
        except Exception as error:  # shown to the user: pausing an already finished run, for example
            logger.warning("cannot %s run %s: %s", verb, self.controller.run_id, error)
            self.show_error(f"Cannot {verb} the run", str(error))

    def _on_controller_event_received(self, event: RunEvent) -> None:
        self.event_log.append_event(event)
        if self._tracker is None:
            return
        for update in self._tracker.apply(event):
            self.scene.set_step_status(update.step_id, update.status, update.detail)
        if self._tracker.run_state != self.run_state:
            self._set_run_state(self._tracker.run_state)

    def _set_run_state(self, state: str) -> None:
        self.run_state = state
        if state in TERMINAL_RUN_STATES:
            self._run_finished_at = time.monotonic()
            self._elapsed_timer.stop()
        text = "No run" if state == "idle" else f"Run {state}"
        if state == "failed" and self._tracker is not None and self._tracker.error:
            text += f": {self._tracker.error}"
        self.run_status_label.setText(text)
        self._on_elapsed_timer_timeout()
        self._update_actions()
        self.sig_run_state_changed.emit(state)

    def _on_elapsed_timer_timeout(self) -> None:
        if self._run_started_at is None or self.run_state == "idle":
            self.elapsed_label.setText("")
            return
        end = self._run_finished_at if self._run_finished_at is not None else time.monotonic()
        self.elapsed_label.setText(format_duration(end - self._run_started_at))

    def _update_actions(self) -> None:
        state = self.run_state
        self.action_run.setEnabled(self.workflow is not None and state not in ACTIVE_RUN_STATES)
        self.action_pause.setEnabled(state in ("running", "waiting"))
        self.action_resume.setEnabled(state == "paused")
        self.action_stop.setEnabled(state in ACTIVE_RUN_STATES)

    def _update_title(self) -> None:
        name = self.workflow.name if self.workflow is not None else "No workflow"
        self.setWindowTitle(f"{name} — Workflow Studio")

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
        await self.controller.aclose()

    def closeEvent(self, event: QCloseEvent) -> None:
        super().closeEvent(event)
        if event.isAccepted():
            self.sig_window_closed.emit()
