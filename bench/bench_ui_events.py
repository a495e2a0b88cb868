"""Benchmark of engine events reaching the real window: batched per frame against one delivery per event.

Run with ``QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_ui_events.py [--seconds S] [--rate N]``.
Synthetic events of one run (step starts, progress, logs and completions of for_each items) are fed
at ``--rate`` events per second into the callable the window registers with the engine. The first
pass goes through the per-frame batcher. The second, in the same process, puts the batcher in
immediate mode, which delivers each event on its own. The table shows events delivered per second, deliveries and repaints
per second of the timeline, canvas and event log, and event-loop latency measured by a 5 ms QTimer
probe (how late each tick fired).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

from studio.app.event_loop import close_event_loop, new_event_loop
from studio.app.main_window import MainWindow
from studio.app.run_status import RunStatusTracker
from studio.engine.events import EventType, RunEvent
from studio.model.document import workflow_from_data
from studio.panels.timeline.model import TimelineModel

PROBE_INTERVAL_MS = 5
FEED_INTERVAL_MS = 10
RUN_ID = "bench-run"


class PaintCounter(QObject):
    """Counts paint events of the widgets it is installed on."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


@dataclass
class Result:
    mode: str
    offered: int
    seconds: float
    deliveries: int
    timeline_paints: int
    canvas_paints: int
    log_paints: int
    max_latency_ms: float
    p99_latency_ms: float

    def per_second(self, value: float) -> float:
        return value / self.seconds


def workflow_document() -> dict[str, object]:
    body = [{"id": "work", "type": "lua_script", "config": {"source": "return item"}}]
    steps: list[dict[str, object]] = [
        {"id": f"prep{index}", "type": "lua_script", "config": {"source": "return 1"}} for index in range(8)
    ]
    steps.append({"id": "loop", "type": "for_each", "config": {"items": "{{input.items}}", "steps": body}})
    return {"schema_version": 1, "name": "UI event benchmark", "steps": steps}


def synthetic_events(count: int) -> list[RunEvent]:
    """Return ``count`` events of one run: items of a fan-out started, progressing, logging and completed."""
    events: list[RunEvent] = [RunEvent(RUN_ID, 1, EventType.RUN_STARTED)]
    item = 0
    while len(events) < count:
        key = f"loop[{item}].work"
        for kind, data in (
            (EventType.STEP_STARTED, {"attempt": 1, "step_type": "lua_script"}),
            (EventType.STEP_PROGRESS, {"progress": 1, "total": 3, "message": "reading"}),
            (EventType.STEP_LOG, {"level": "info", "message": f"item {item} half way"}),
            (EventType.STEP_PROGRESS, {"progress": 2, "total": 3, "message": "scoring"}),
            (EventType.STEP_PROGRESS, {"progress": 3, "total": 3, "message": "done"}),
            (EventType.STEP_COMPLETED, {"result": item, "duration_s": 0.01}),
        ):
            events.append(RunEvent(RUN_ID, len(events) + 1, kind, key, "work", dict(data)))
        item += 1
    return events[:count]


def reset_window(window: MainWindow) -> None:
    """Show an empty live run with id RUN_ID, as after the window started it."""
    workflow = window.workflow
    assert workflow is not None
    window.set_workflow(workflow)
    # The synthetic run has no store rows, so the run display is set up as start_run would.
    window.shown_run_id = RUN_ID
    window._tracker = RunStatusTracker(workflow)
    window.timeline.set_model(TimelineModel(RUN_ID))


async def measure(window: MainWindow, mode: str, rate: int, seconds: float, counters: dict[str, PaintCounter]) -> Result:
    reset_window(window)
    batcher = window.event_batcher
    batcher.immediate = mode == "direct"
    batcher.deliveries = batcher.delivered_events = 0
    events = synthetic_events(int(rate * seconds))
    for counter in counters.values():
        counter.count = 0
    latencies: list[float] = []
    last_tick = time.perf_counter()

    def on_probe() -> None:
        nonlocal last_tick
        now = time.perf_counter()
        latencies.append(max((now - last_tick) * 1000 - PROBE_INTERVAL_MS, 0.0))
        last_tick = now

    probe = QTimer()
    probe.setInterval(PROBE_INTERVAL_MS)
    probe.timeout.connect(on_probe)
    fed = 0
    started = time.perf_counter()

    def on_feed() -> None:
        nonlocal fed
        due = min(len(events), int((time.perf_counter() - started) * rate))
        while fed < due:
            batcher.push(events[fed])
            fed += 1

    feeder = QTimer()
    feeder.setInterval(FEED_INTERVAL_MS)
    feeder.timeout.connect(on_feed)
    probe.start()
    feeder.start()
    while batcher.delivered_events < len(events):
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    feeder.stop()
    probe.stop()
    return Result(
        mode=mode,
        offered=len(events),
        seconds=elapsed,
        deliveries=batcher.deliveries,
        timeline_paints=counters["timeline"].count,
        canvas_paints=counters["canvas"].count,
        log_paints=counters["log"].count,
        max_latency_ms=max(latencies, default=0.0),
        p99_latency_ms=statistics.quantiles(latencies, n=100)[98] if len(latencies) > 100 else max(latencies),
    )


def print_table(results: list[Result], rate: int) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"Qt platform {os.environ['QT_QPA_PLATFORM']}")
    print(f"offered: {rate} events/s; probe timer: {PROBE_INTERVAL_MS} ms\n")
    header = ("mode", "events", "seconds", "delivered/s", "deliveries/s", "timeline paints/s",
              "canvas paints/s", "log paints/s", "max latency ms", "p99 latency ms")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for result in results:
        print(" | ".join((
            result.mode,
            str(result.offered),
            f"{result.seconds:.2f}",
            f"{result.per_second(result.offered):.0f}",
            f"{result.per_second(result.deliveries):.0f}",
            f"{result.per_second(result.timeline_paints):.1f}",
            f"{result.per_second(result.canvas_paints):.1f}",
            f"{result.per_second(result.log_paints):.1f}",
            f"{result.max_latency_ms:.1f}",
            f"{result.p99_latency_ms:.1f}",
        )))
    batched, direct = results
    print("\nratios, direct / batched:")
    print(f"  deliveries per second: {direct.per_second(direct.deliveries) / batched.per_second(batched.deliveries):.1f}x")
    print(f"  max loop latency: {direct.max_latency_ms / max(batched.max_latency_ms, 0.1):.1f}x")
    print(f"  p99 loop latency: {direct.p99_latency_ms / max(batched.p99_latency_ms, 0.1):.1f}x")
    print(f"  time to deliver all events: {direct.seconds / batched.seconds:.2f}x")


async def run(seconds: float, rate: int) -> list[Result]:
    with tempfile.TemporaryDirectory() as directory:
        window = MainWindow(store_path=Path(directory) / "bench.db")
        window.resize(1600, 1000)
        window.show()
        window.set_workflow(workflow_from_data(workflow_document(), "benchmark"))
        window.runs_panel.stop_polling()
        # The event log shares a tab with the timeline; floating it keeps both visible, so both paint.
        window._event_dock.setFloating(True)
        window._event_dock.resize(900, 300)
        window._event_dock.show()
        counters = {"timeline": PaintCounter(), "canvas": PaintCounter(), "log": PaintCounter()}
        window.timeline.installEventFilter(counters["timeline"])
        window.view.viewport().installEventFilter(counters["canvas"])
        window.event_log.table.viewport().installEventFilter(counters["log"])
        await asyncio.sleep(0.3)
        try:
            return [await measure(window, mode, rate, seconds, counters) for mode in ("batched", "direct")]
        finally:
            await window.aclose()
            window.close()


def main() -> None:
    # The synthetic run has no store row, so the window's lookups of its owner log warnings; hide them.
    logging.getLogger("studio.app.main_window").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="feeding time per mode, in seconds")
    parser.add_argument("--rate", type=int, default=1000, help="events offered per second")
    arguments = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    loop = new_event_loop(app)  # type: ignore[arg-type]
    asyncio.set_event_loop(loop)
    try:
        results = loop.run_until_complete(run(arguments.seconds, arguments.rate))
    finally:
        close_event_loop(loop)
        asyncio.set_event_loop(None)
    print_table(results, arguments.rate)


if __name__ == "__main__":
    main()
