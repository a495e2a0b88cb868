"""Benchmark of live validation and template completion on large workflows in the editor.

Run from the repository root: ``QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_live_validation.py``
(options ``--sizes 100,1000,5000 --repeat 30``). Each row is the median and 95th percentile in
milliseconds over the repeats, measured in one process with a real EditorDocument, WorkflowScene and
LiveValidation on the generated workflows of ``tests/model/workflow_builders.py``.

Rows, per workflow size:

- *commit an edit*: ``document.set_step_field`` of a step title, the synchronous work when an
  inspector field finishes editing (the scene updates its item too). This is on the typing path.
- *copy for the worker*: :func:`frozen_copy`, the only validation work the GUI thread does before
  handing off.
- *re-validate, title edit* and *re-validate, reference edit*: the IncrementalValidator on the worker,
  after an edit that keeps the graph and after one that changes a template reference.
- *publish findings*: node marks and the Problems table for the findings of one dangling reference.
- *edit to findings shown*: from the end of the debounce to the findings reaching the panel.
- *longest GUI stall*: the longest gap between 1 ms timer ticks on the GUI thread from a reference
  edit until its findings are shown. It bounds the delay of a keystroke typed meanwhile. It is
  measured once with the validation on the worker thread (the default) and once on the GUI thread.
- *completion index* and *completion per keystroke*: building a DependencyIndex (once per document
  change) and one ``completions()`` call with it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "model"))

from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
from PySide6.QtWidgets import QApplication
from workflow_builders import CATALOG, generated_workflow

from studio.app.live_validation import LiveValidation, frozen_copy
from studio.canvas.document import EditorDocument
from studio.canvas.scene import WorkflowScene
from studio.model.output_shapes import DependencyIndex, completions
from studio.model.workflow import LlmCallStep
from studio.panels.problems import ProblemsPanel

Row = tuple[str, float, float]


def summarise(durations: list[float]) -> tuple[float, float]:
    ordered = sorted(durations)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def measure(action: Callable[[int], object], repeat: int) -> tuple[float, float]:
    durations: list[float] = []
    for index in range(repeat):
        started = time.perf_counter()
        action(index)
        durations.append((time.perf_counter() - started) * 1000)
    return summarise(durations)


def wait_for_findings(live: LiveValidation, timeout_ms: int = 30_000) -> None:
    loop = QEventLoop()
    live.sig_findings_changed.connect(loop.quit)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    live.sig_findings_changed.disconnect(loop.quit)


def llm_step_ids(document: EditorDocument) -> list[str]:
    return [step.id for step in document.workflow.steps if isinstance(step, LlmCallStep)]


def bench_size(size: int, repeat: int) -> list[Row]:
    document = EditorDocument(generated_workflow(size))
    scene = WorkflowScene()
    scene.set_document(document)
    panel = ProblemsPanel()
    live = LiveValidation(document, scene, catalog=CATALOG, delay_ms=0)
    live.sig_findings_changed.connect(panel.set_findings)
    live.validate_now()
    targets = llm_step_ids(document)
    middle = targets[len(targets) // 2]
    rows: list[Row] = []

    rows.append(("commit an edit (set_step_field)",
                 *measure(lambda i: document.set_step_field(middle, "name", f"title {i}"), repeat)))
    rows.append(("copy for the worker (frozen_copy)", *measure(lambda _: frozen_copy(document.workflow), repeat)))

    title_times: list[float] = []
    shown_times: list[float] = []
    for index in range(repeat):
        document.set_step_field(middle, "name", f"again {index}")
        started = time.perf_counter()
        wait_for_findings(live)
        shown_times.append((time.perf_counter() - started) * 1000)
        title_times.append(live.last_duration_ms)
    rows.append(("re-validate, title edit (worker)", *summarise(title_times)))

    reference_times: list[float] = []
    upstream = targets[0]
    for index in range(repeat):
        prompt = f"Use {{{{steps.{upstream}.result}}}} #{index}" if index % 2 else "plain text"
        document.set_step_field(middle, "config.prompt", prompt)
        wait_for_findings(live)
        reference_times.append(live.last_duration_ms)
    rows.append(("re-validate, reference edit (worker)", *summarise(reference_times)))
    rows.append(("edit to findings shown (after debounce)", *summarise(shown_times)))

    document.set_step_field(middle, "config.prompt", "{{steps.missing.result}}")
    wait_for_findings(live)
    findings = list(live.findings)

    def publish(index: int) -> None:
        live._publish(findings if index % 2 == 0 else [], 0.0)

    rows.append((f"publish findings ({len(findings)} finding)", *measure(publish, repeat)))
    rows.append(("longest GUI stall, validation on worker", *summarise(gui_stalls(document, live, middle, repeat))))
    live._threaded = False
    rows.append(("longest GUI stall, validation on GUI thread", *summarise(gui_stalls(document, live, middle, repeat))))
    live._threaded = True

    index_build = measure(lambda _: DependencyIndex(document.workflow), repeat)
    rows.append(("completion index (once per change)", *index_build))
    index = DependencyIndex(document.workflow)
    last = targets[-1]
    rows.append(("completion per keystroke",
                 *measure(lambda _: completions(document.workflow, last, "steps.", index=index), repeat)))
    live.close()
    return rows


def gui_stalls(document: EditorDocument, live: LiveValidation, step_id: str, repeat: int) -> list[float]:
    """Return, per validation, the longest gap between 1 ms GUI timer ticks while the worker ran."""
    stalls: list[float] = []
    clock = QElapsedTimer()
    ticker = QTimer()
    ticker.setInterval(1)
    state = {"last": 0, "gap": 0}

    def on_tick() -> None:
        now = clock.elapsed()
        state["gap"] = max(state["gap"], now - state["last"])
        state["last"] = now

    ticker.timeout.connect(on_tick)
    for index in range(repeat):
        document.set_step_field(step_id, "config.prompt", f"reference edit {index}")
        clock.start()
        state.update(last=0, gap=0)
        ticker.start()
        wait_for_findings(live)
        ticker.stop()
        stalls.append(float(max(state["gap"], clock.elapsed() - state["last"])))
    return stalls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="comma-separated workflow sizes in steps")
    parser.add_argument("--repeat", type=int, default=30, help="measurements per row")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.processor() or 'unknown CPU'}; repeat {args.repeat}; times in ms (median / p95)")
    print()
    print("| row | " + " | ".join(f"{size} steps" for size in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    results = {size: bench_size(size, args.repeat) for size in sizes}
    for position, (name, _median, _p95) in enumerate(results[sizes[0]]):
        cells = []
        for size in sizes:
            _label, median, p95 = results[size][position]
            cells.append(f"{median:.2f} / {p95:.2f}")
        label = name.split(" (")[0] if "publish" in name else name
        print(f"| {label} | " + " | ".join(cells) + " |")
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
