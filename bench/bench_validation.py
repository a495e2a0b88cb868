"""Benchmark of workflow validation: full runs, incremental re-validation and two baselines.

Run from the repository root: ``.venv/bin/python bench/bench_validation.py [--repeat N]``.
Each row is the median and 95th percentile over N runs in one process, with the garbage collector
on as in the application. The baselines are measured in the same run, so ratios stay comparable
across machines: pydantic ``model_validate`` of the document (loading it) and building a networkx
graph of its top-level steps and edges.
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

import networkx as nx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "model"))

from workflow_builders import CATALOG, generated_workflow

from studio.model.document import workflow_to_data
from studio.model.validation import IncrementalValidator, validate_workflow
from studio.model.workflow import LlmCallStep, Workflow

SIZES = (1000, 5000)


def measure(action: Callable[[int], object], repeat: int) -> tuple[float, float]:
    """Return the median and 95th percentile of ``action(i)`` in milliseconds."""
    durations: list[float] = []
    for index in range(repeat):
        started = time.perf_counter()
        action(index)
        durations.append((time.perf_counter() - started) * 1000)
    durations.sort()
    return statistics.median(durations), durations[min(len(durations) - 1, int(len(durations) * 0.95))]


def build_top_graph(document: Workflow) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(step.id for step in document.steps)
    graph.add_edges_from((edge.source, edge.target) for edge in document.edges)
    return graph


def bench_size(size: int, repeat: int) -> list[tuple[str, float, float]]:
    document = generated_workflow(size)
    data = workflow_to_data(document)
    rows: list[tuple[str, float, float]] = []
    rows.append(("baseline: pydantic model_validate", *measure(lambda _: Workflow.model_validate(data), repeat)))
    rows.append(("baseline: networkx graph of top level", *measure(lambda _: build_top_graph(document), repeat)))
    rows.append(("full validation", *measure(lambda _: validate_workflow(document, catalog=CATALOG), repeat)))

    validator = IncrementalValidator(CATALOG)
    validator.validate(document)
    prompts = [step for step in document.steps if isinstance(step, LlmCallStep)]

    def edit_text(index: int) -> None:
        prompts[index % len(prompts)].config.prompt += " more"
        validator.validate(document)

    rows.append(("incremental: one prompt's text edited", *measure(edit_text, repeat)))

    def edit_reference(index: int) -> None:
        # Adds a reference to the first step, so the top-level graph changes and is rebuilt.
        step = prompts[index % len(prompts)]
        step.config.prompt += " {{steps.s0.result}}"
        validator.validate(document)

    rows.append(("incremental: one reference added", *measure(edit_reference, repeat)))
    assert validator.validate(document) == validate_workflow(document, catalog=CATALOG)
    return rows


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="runs per row (default: %(default)s)")
    arguments = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, {cpu_model()}, Python {platform.python_version()}")
    print(f"runs per row: {arguments.repeat}; times in ms")
    print()
    header = f"{'steps':>5}  {'what':<40} {'median':>8} {'p95':>8} {'x model_validate':>17} {'x graph':>8}"
    print(header)
    print("-" * len(header))
    for size in SIZES:
        rows = bench_size(size, arguments.repeat)
        load, graph = rows[0][1], rows[1][1]
        for label, median, p95 in rows:
            print(f"{size:>5}  {label:<40} {median:>8.2f} {p95:>8.2f} {median / load:>17.2f} {median / graph:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
