"""Benchmark of the editable canvas: opening, frame times zoomed to fit and at 1:1, and one-node moves.

Run with ``QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_canvas.py [--sizes 1000 5000] [--frames N]``.
Each size is a layered workflow of lua_script steps in columns of 40. Each step is fed by one or two
steps of the previous column at most three rows away, as a crossing-reducing layout places them.
The workflow is loaded into an :class:`EditorDocument` whose scene follows it, and a
:class:`CanvasView` of 1920x1080 pixels is rendered offscreen into a QImage. Every row has a
baseline measured in the same process:

- open: the same number of Qt's own rectangle and line items (no Python paint code);
- frames: the same scene with level of detail off (every item painted in full). The first frame
  after a zoom step cannot use the node pixmaps cached by earlier frames, so its baseline is the
  warm frame;
- move: ``setPos`` on the node item directly, without the document and its undo command.

Times are medians. The CPU time of this process is the main figure, because on a shared machine
the elapsed time also counts waiting for a core; both are printed.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QLineF, QPointF, QRectF
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QApplication, QGraphicsScene

from studio.canvas import edge_item, node_item
from studio.canvas.document import EditorDocument
from studio.canvas.node_item import DETAIL_ZOOM, PLAIN_ZOOM
from studio.canvas.scene import WorkflowScene
from studio.canvas.view import CanvasView
from studio.model.document import workflow_from_data
from studio.model.workflow import Workflow

VIEW_SIZE = (1920, 1080)
ROWS_PER_COLUMN = 40
COLUMN_GAP = 320.0
ROW_GAP = 120.0
NEIGHBOUR_ROWS = 3
"""A step's inputs come from rows at most this far from its own row in the previous column."""
TARGETS_5000_MS = {"open": 1000.0, "frame, zoomed to fit": 50.0, "frame, 1:1": 16.0, "move one node": 2.0}
"""Targets for the 5,000-step workflow, in milliseconds."""


@dataclass
class Row:
    steps: int
    metric: str
    variant: str
    value: Timing
    baseline: Timing

    @property
    def ratio(self) -> float:
        """CPU time of the measurement over CPU time of its baseline."""
        return self.value.cpu_ms / self.baseline.cpu_ms if self.baseline.cpu_ms > 0 else float("nan")


def layered_document(steps: int, seed: int = 7) -> dict[str, Any]:
    """Return a workflow document of ``steps`` lua_script steps in columns of :data:`ROWS_PER_COLUMN`."""
    rng = random.Random(seed)
    step_list: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for index in range(steps):
        column, row = divmod(index, ROWS_PER_COLUMN)
        step_list.append({
            "id": f"s{index}",
            "type": "lua_script",
            "position": {"x": column * COLUMN_GAP, "y": row * ROW_GAP},
            "config": {"source": "return 1"},
        })
        if column > 0:
            rows = range(max(0, row - NEIGHBOUR_ROWS), min(ROWS_PER_COLUMN, row + NEIGHBOUR_ROWS + 1))
            for source_row in rng.sample(rows, k=rng.choice((1, 2))):
                edges.append({"source": f"s{(column - 1) * ROWS_PER_COLUMN + source_row}", "target": f"s{index}"})
    return {"schema_version": 1, "name": f"{steps} steps", "steps": step_list, "edges": edges}


@dataclass(frozen=True)
class Timing:
    """CPU time of this process and wall-clock time of one measurement, in ms."""

    cpu_ms: float
    wall_ms: float


def timed(action: Callable[[], object]) -> Timing:
    cpu = time.process_time()
    wall = time.perf_counter()
    action()
    return Timing((time.process_time() - cpu) * 1000.0, (time.perf_counter() - wall) * 1000.0)


def median_timing(timings: list[Timing]) -> Timing:
    return Timing(statistics.median(t.cpu_ms for t in timings), statistics.median(t.wall_ms for t in timings))


def render_timing(view: CanvasView, frames: int) -> Timing:
    """Return the median time to render the view's viewport into an image."""
    image = QImage(*VIEW_SIZE, QImage.Format.Format_ARGB32_Premultiplied)

    def frame() -> None:
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        view.render(painter)
        painter.end()

    frame()
    return median_timing([timed(frame) for _ in range(frames)])


def cold_render_timing(view: CanvasView, frames: int) -> Timing:
    """Return the median time of the first frame after a zoom change, which re-renders every node pixmap.

    The zoom alternates between two factors close to the current one, as wheel zooming does.
    """
    image = QImage(*VIEW_SIZE, QImage.Format.Format_ARGB32_Premultiplied)
    timings = []
    for index in range(frames):
        view.zoom_by(1.02 if index % 2 == 0 else 1 / 1.02)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        timings.append(timed(lambda painter=painter: view.render(painter)))  # type: ignore[misc]
        painter.end()
    return median_timing(timings)


def plain_scene_timing(workflow: Workflow) -> Timing:
    """Return the time to build Qt's own rectangle and line items for the workflow's nodes and edges."""
    positions = {step.id: step.position for step in workflow.steps}

    def build() -> QGraphicsScene:
        scene = QGraphicsScene()
        for position in positions.values():
            assert position is not None
            scene.addRect(QRectF(position.x, position.y, node_item.NodeItem.WIDTH, node_item.NodeItem.HEIGHT))
        for edge in workflow.edges:
            source, target = positions[edge.source], positions[edge.target]
            assert source is not None and target is not None
            scene.addLine(QLineF(QPointF(source.x, source.y), QPointF(target.x, target.y)))
        return scene

    scenes: list[QGraphicsScene] = []
    elapsed = timed(lambda: scenes.append(build()))
    scenes.clear()
    return elapsed


def set_level_of_detail(enabled: bool, view: CanvasView) -> None:
    """Turn both the per-item cheap painting and the overview batch on or off."""
    node_item.DETAIL_ZOOM = DETAIL_ZOOM if enabled else 0.0
    node_item.PLAIN_ZOOM = PLAIN_ZOOM if enabled else 0.0
    edge_item.PLAIN_ZOOM = PLAIN_ZOOM if enabled else 0.0
    view.set_overview_enabled(enabled)


def measure(steps: int, frames: int, moves: int) -> list[Row]:
    workflow = workflow_from_data(layered_document(steps))
    document = EditorDocument()
    scene = WorkflowScene()
    scene.set_document(document)
    view = CanvasView(scene)
    view.resize(*VIEW_SIZE)
    view.show()
    QApplication.processEvents()
    rows: list[Row] = []

    gc.collect()
    opened = timed(lambda: document.load(workflow))
    rows.append(Row(steps, "open", "document load + scene build", opened, plain_scene_timing(workflow)))

    view.zoom_to_fit()
    set_level_of_detail(False, view)
    full = render_timing(view, frames)
    set_level_of_detail(True, view)
    view.set_overview_enabled(False)
    per_item = render_timing(view, frames)
    view.set_overview_enabled(True)
    overview = render_timing(view, frames)
    rows.append(Row(steps, "frame, zoomed to fit", f"per-item cheap boxes (zoom {view.zoom():.3f})", per_item, full))
    rows.append(Row(steps, "frame, zoomed to fit", f"overview batch, default (zoom {view.zoom():.3f})", overview, full))

    middle = scene.node_item(f"s{steps // 2}")
    assert middle is not None
    view.reset_zoom()
    view.centerOn(middle)
    set_level_of_detail(False, view)
    full_one = render_timing(view, frames)
    set_level_of_detail(True, view)
    warm = render_timing(view, frames)
    rows.append(Row(steps, "frame, 1:1", "default (node pixmaps cached)", warm, full_one))
    rows.append(Row(steps, "frame, 1:1", "first frame after a zoom step", cold_render_timing(view, frames), warm))

    step_id = middle.step_id
    start = middle.pos()

    def document_move(index: int) -> None:
        document.move_steps({step_id: (start.x() + index % 50, start.y() + index % 30)}, merge=True)

    def direct_move(index: int) -> None:
        middle.setPos(start.x() + index % 50, start.y() + index % 30)

    direct = median_timing([timed(lambda i=index: direct_move(i)) for index in range(moves)])  # type: ignore[misc]
    through_document = median_timing(
        [timed(lambda i=index: document_move(i)) for index in range(moves)]  # type: ignore[misc]
    )
    document.end_move()
    rows.append(Row(steps, "move one node", f"through the document, {len(middle.edges())} edges", through_document,
                    direct))
    view.close()
    scene.set_document(None)
    return rows


def print_table(rows: list[Row]) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"Qt platform {os.environ.get('QT_QPA_PLATFORM')}, view {VIEW_SIZE[0]}x{VIEW_SIZE[1]}, "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print("cpu = CPU time of this process, wall = elapsed time; ratio = cpu / baseline cpu; targets apply to cpu")
    header = (f"{'steps':>5}  {'metric':<21} {'variant':<48} {'cpu ms':>8} {'wall ms':>8} "
              f"{'base cpu':>8} {'ratio':>6}  target")
    print(header)
    for row in rows:
        measured_variant = "per-item" not in row.variant and "first frame" not in row.variant
        target = TARGETS_5000_MS.get(row.metric) if row.steps == 5000 and measured_variant else None
        verdict = "" if target is None else f"< {target:g} ms {'met' if row.value.cpu_ms < target else 'MISSED'}"
        print(f"{row.steps:>5}  {row.metric:<21} {row.variant:<48} {row.value.cpu_ms:>8.2f} {row.value.wall_ms:>8.2f} "
              f"{row.baseline.cpu_ms:>8.2f} {row.ratio:>6.2f}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000], help="workflow sizes in steps")
    parser.add_argument("--frames", type=int, default=7, help="frames rendered per measurement (median is shown)")
    parser.add_argument("--moves", type=int, default=300, help="moves timed per measurement (median is shown)")
    arguments = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    rows: list[Row] = []
    for steps in arguments.sizes:
        rows.extend(measure(steps, arguments.frames, arguments.moves))
    print_table(rows)
    del app


if __name__ == "__main__":
    main()
