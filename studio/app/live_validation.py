"""Validation on every edit: debounced, run on a worker thread, shown on the canvas and in the Problems dock."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import shiboken6
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QDockWidget, QMenu

from studio.model.validation import Finding, IncrementalValidator, ToolCatalog
from studio.model.workflow import AnyStep, ForEachStep, Workflow
from studio.panels.inspector.navigation import select_step
from studio.panels.inspector.tool_schemas import tool_schemas_from_store
from studio.panels.problems import ProblemsPanel

logger = logging.getLogger(__name__)

DEBOUNCE_MS = 150
"""Quiet time after the last edit before validation starts, in milliseconds."""
TOOLTIP_LINES = 5
"""Problem messages listed in a node's tooltip; the rest are counted."""


class _Document(Protocol):
    """The part of ``studio.canvas.document.EditorDocument`` that live validation uses."""

    @property
    def workflow(self) -> Workflow: ...

    @property
    def sig_changed(self) -> Any: ...


RESULT_POLL_MS = 10
"""How often the GUI thread checks whether the worker thread's validation has finished."""


class LiveValidation(QObject):
    """Re-validates ``document.workflow`` :data:`DEBOUNCE_MS` after the last edit and publishes the findings.

    With ``threaded`` (the default) the :class:`IncrementalValidator` runs on one worker thread, so a
    keystroke that arrives during a validation is handled at once. The worker reads a copy of the
    document's step and edge lists (see :func:`frozen_copy`), because the document edits those lists
    in place. At most one validation runs at a time, and an edit made meanwhile starts another when
    it finishes. Results of an older revision of the document are dropped.
    """

    sig_findings_changed = Signal(list)
    """Emitted with the list of :class:`Finding` after each validation of the current document."""

    def __init__(
        self,
        document: _Document,
        scene: Any = None,
        *,
        catalog: ToolCatalog | None = None,
        delay_ms: int = DEBOUNCE_MS,
        threaded: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.document = document
        self.scene = scene
        self.validator = IncrementalValidator(catalog)
        self.findings: list[Finding] = []
        self.last_duration_ms = 0.0
        self.validation_count = 0
        self._threaded = threaded
        self._executor: ThreadPoolExecutor | None = None
        self._running: Future[tuple[int, list[Finding], float]] | None = None
        self._revision = 0
        self._marked: set[str] = set()
        self._lock = threading.Lock()
        # The worker thread never touches a Qt object: emitting from it raced with the window's
        # destruction and crashed the process. The GUI thread polls the worker's future instead.
        self._result_poll = QTimer(self)
        self._result_poll.setInterval(RESULT_POLL_MS)
        self._result_poll.timeout.connect(self._on_result_poll_timeout)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self._on_timer_timeout)
        document.sig_changed.connect(self._on_document_changed)
        if scene is not None and hasattr(scene, "sig_workflow_changed"):
            scene.sig_workflow_changed.connect(self._on_scene_workflow_changed)

    # -- public ----------------------------------------------------------------------------

    def set_catalog(self, catalog: ToolCatalog | None) -> None:
        """Check MCP tool names and arguments against ``catalog`` from the next validation on."""
        with self._lock:
            self.validator.catalog = catalog
        self.schedule()

    def schedule(self) -> None:
        """Validate once no edit has arrived for the debounce delay."""
        self._timer.start()

    def _on_document_changed(self) -> None:
        self._revision += 1
        self._timer.start()

    def is_idle(self) -> bool:
        """Return whether no validation is waiting or running."""
        return not self._timer.isActive() and self._running is None

    def validate_now(self) -> list[Finding]:
        """Validate on the calling (GUI) thread, publish the findings and return them."""
        self._timer.stop()
        workflow = self.document.workflow
        findings, elapsed_ms = self._validate(workflow)
        self._publish(findings, elapsed_ms)
        return findings

    def close(self) -> None:
        """Stop the timer and the worker thread; waits for a running validation to finish."""
        self._timer.stop()
        self._result_poll.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- validation ------------------------------------------------------------------------

    def _validate(self, workflow: Workflow) -> tuple[list[Finding], float]:
        started = time.perf_counter()
        with self._lock:
            findings = self.validator.validate(workflow)
        return findings, (time.perf_counter() - started) * 1000.0

    def _on_timer_timeout(self) -> None:
        if not self._threaded:
            self.validate_now()
            return
        if self._running is not None:
            return  # _on_finished starts the next validation
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-validation")
        workflow = frozen_copy(self.document.workflow)
        self._running = self._executor.submit(self._run_in_worker, self._revision, workflow)
        self._result_poll.start()

    def _run_in_worker(self, revision: int, workflow: Workflow) -> tuple[int, list[Finding], float]:
        try:
            findings, elapsed_ms = self._validate(workflow)
        except Exception:
            logger.exception("live validation of workflow %s failed", workflow.id)
            findings, elapsed_ms = [], 0.0
        return revision, findings, elapsed_ms

    def _on_result_poll_timeout(self) -> None:
        running = self._running
        if running is None or not running.done():
            return
        self._result_poll.stop()
        if running.cancelled():
            self._running = None
            return
        self._on_finished(*running.result())

    def _on_finished(self, revision: int, findings: list[Finding], elapsed_ms: float) -> None:
        self._running = None
        if revision != self._revision:
            # The document changed meanwhile: validate again unless the debounce timer will.
            if not self._timer.isActive():
                self._on_timer_timeout()
            return
        self._publish(findings, elapsed_ms)

    def _publish(self, findings: list[Finding], elapsed_ms: float) -> None:
        self.findings = findings
        self.last_duration_ms = elapsed_ms
        self.validation_count += 1
        logger.debug("live validation: %d findings in %.1f ms", len(findings), elapsed_ms)
        self._mark_scene()
        self.sig_findings_changed.emit(findings)

    # -- canvas ----------------------------------------------------------------------------

    def _on_scene_workflow_changed(self) -> None:
        # The scene rebuilt its items, so every mark is gone.
        self._marked = set()
        self._mark_scene()

    def _mark_scene(self) -> None:
        if self.scene is None or not shiboken6.isValid(self.scene):
            return
        per_step: dict[str, list[Finding]] = defaultdict(list)
        for finding in self.findings:
            if finding.step_id:
                per_step[finding.step_id].append(finding)
        for step_id in self._marked - per_step.keys():
            self._set_node_problems(step_id, None, 0, "")
        for step_id, step_findings in per_step.items():
            severity = "error" if any(item.severity == "error" for item in step_findings) else "warning"
            self._set_node_problems(step_id, severity, len(step_findings), node_tooltip(step_findings))
        self._marked = set(per_step)

    def _set_node_problems(self, step_id: str, severity: str | None, count: int, tooltip: str) -> None:
        item = self.scene.node_item(step_id)
        if item is None:
            return
        # NOTE: NodeItem.set_problems comes with the editable canvas; older canvases show no marks.
        if hasattr(item, "set_problems"):
            item.set_problems(severity, count, tooltip)


def frozen_copy(workflow: Workflow) -> Workflow:
    """Return a copy of ``workflow`` with its own step and edge lists, at every for_each level.

    Steps are shared with the original: the editor document replaces a changed step and never
    changes one in place, but it does insert into and remove from the lists themselves.
    """
    return workflow.model_copy(update={"steps": _copy_steps(workflow.steps), "edges": list(workflow.edges)})


def _copy_steps(steps: list[AnyStep]) -> list[AnyStep]:
    copied: list[AnyStep] = []
    for step in steps:
        if isinstance(step, ForEachStep):
            config = step.config.model_copy(
                update={"steps": _copy_steps(step.config.steps), "edges": list(step.config.edges)}
            )
            step = step.model_copy(update={"config": config})
        copied.append(step)
    return copied


def node_tooltip(findings: list[Finding]) -> str:
    """Return the tooltip lines of a node's problems: the first few messages and a count of the rest."""
    lines = [f"{finding.severity}: {finding.message}" for finding in findings[:TOOLTIP_LINES]]
    if len(findings) > TOOLTIP_LINES:
        lines.append(f"… and {len(findings) - TOOLTIP_LINES} more in the Problems panel")
    return "\n".join(lines)


# -- window integration ---------------------------------------------------------------------------


class LiveValidationInstall:
    """The live validation, Problems panel and dock that :func:`install_live_validation` added to a window."""

    def __init__(self, live: LiveValidation, panel: ProblemsPanel, dock: QDockWidget) -> None:
        self.live = live
        self.panel = panel
        self.dock = dock


def install_live_validation(window: Any, *, catalog: ToolCatalog | None = None) -> LiveValidationInstall:
    """Add the Problems dock and live validation to ``window``.

    ``window`` needs ``document`` (an EditorDocument) and ``scene`` (a WorkflowScene). Without
    ``catalog``, MCP tools are checked against the tool cache of ``window.store`` when it has one. A click on a
    problem selects its step on the canvas, centres the view on it when the window has ``view``, and
    focuses the field in the inspector when :func:`studio.panels.inspector.install_inspector` has set
    ``window.inspector``.
    """
    document = window.document
    scene = window.scene
    if catalog is None:
        catalog = tool_schemas_from_store(getattr(window, "store", None))[0]
    live = LiveValidation(document, scene, catalog=catalog, parent=window)
    panel = ProblemsPanel(window)
    live.sig_findings_changed.connect(panel.set_findings)
    dock = QDockWidget("Problems", window)
    dock.setObjectName("problems-dock")
    dock.setWidget(panel)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)

    def show_problem(step_id: str, field_path: str) -> None:
        if step_id:
            select_step(window, step_id)
        inspector = getattr(window, "inspector", None)
        if inspector is not None and step_id:
            inspector.focus_field(field_path)

    panel.sig_problem_activated.connect(show_problem)
    menu_bar = window.menuBar()
    for action in menu_bar.actions():
        menu = action.menu()
        if isinstance(menu, QMenu) and action.text() == "&View":
            menu.addAction(dock.toggleViewAction())
    window.live_validation = live
    window.problems_panel = panel
    live.schedule()
    return LiveValidationInstall(live, panel, dock)
