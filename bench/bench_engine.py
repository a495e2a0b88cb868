"""Engine overhead benchmark: durable runs against a plain asyncio loop doing the same work.

Prints a table. Each row runs the same trivial Lua step through the engine, which journals to a
real SQLite file in a temporary directory, and through a bare asyncio loop (the floor) that calls
the engine's Lua runner (``LuaWorkers``) the same number of times. The difference divided by the
number of steps is the engine's overhead per step. Each case runs on one engine that has already
finished a small run (so opening the journal and starting threads are not counted), several
rounds in a row, and the table shows the medians. Each round publishes its workflow first, as the
studio's Publish does (validation included), and times the run of that version.

    .venv/bin/python bench/bench_engine.py [--steps 1000] [--items 10000] [--parallelism 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from studio.engine import Engine
from studio.engine.executors.lua import LuaLimits
from studio.engine.executors.lua_workers import LuaWorkers
from studio.model.document import workflow_from_data
from studio.startup import freeze_startup_objects
from studio.store import open_store
from studio.store.workflow_library import publish

SOURCE = "return value"
REPEATS = 5


def sequential_workflow(steps: int) -> dict[str, Any]:
    body = [{"id": "s0", "type": "lua_script", "config": {"source": SOURCE, "inputs": {"value": 0}}}]
    for index in range(1, steps):
        body.append(
            {
                "id": f"s{index}",
                "type": "lua_script",
                "config": {"source": SOURCE, "inputs": {"value": f"{{{{steps.s{index - 1}.result}}}}"}},
            }
        )
    return {"schema_version": 1, "name": f"sequential {steps}", "steps": body}


def fan_out_workflow(items: int, parallelism: int) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "name": f"fan-out {items}",
        "input_schema": {"type": "object", "properties": {"items": {"type": "array"}}},
        "steps": [
            {
                "id": "loop",
                "type": "for_each",
                "config": {
                    "items": "{{input.items}}",
                    "max_parallelism": parallelism,
                    "steps": [
                        {
                            "id": "body",
                            "type": "lua_script",
                            "config": {"source": SOURCE, "inputs": {"value": "{{item}}"}},
                        }
                    ],
                },
            }
        ],
    }


async def floor_sequential(workers: LuaWorkers, steps: int) -> float:
    started = time.perf_counter()
    value: Any = 0
    for _ in range(steps):
        value = await workers.run(SOURCE, {"value": value}, LuaLimits())
    return time.perf_counter() - started


async def floor_fan_out(workers: LuaWorkers, items: int, parallelism: int) -> float:
    started = time.perf_counter()
    semaphore = asyncio.Semaphore(parallelism)

    async def one(value: int) -> Any:
        async with semaphore:
            return await workers.run(SOURCE, {"value": value}, LuaLimits())

    await asyncio.gather(*(one(index) for index in range(items)))
    return time.perf_counter() - started


async def engine_run(engine: Engine, document: dict[str, Any], inputs: dict[str, Any]) -> float:
    version = publish(engine.store, workflow_from_data(document), "benchmark round")
    started = time.perf_counter()
    run_id = await engine.start_run(version.id, inputs)
    summary = await engine.wait(run_id)
    elapsed = time.perf_counter() - started
    if summary.status != "completed":
        raise SystemExit(f"benchmark run ended {summary.status}: {summary.error}")
    return elapsed


async def measure(
    database: Path, document: dict[str, Any], inputs: dict[str, Any], floor: Callable[[LuaWorkers], Awaitable[float]]
) -> tuple[float, float]:
    """Return the median floor and engine times of ``REPEATS`` rounds on a warm engine.

    Each round publishes a new workflow (a new id, so a new content hash). Publishing validates it
    and marks the version, so its run does not validate it again; ``bench_validation.py`` times
    validation on its own.
    """
    store = open_store(database)
    engine = Engine(store, max_concurrency=64)
    freeze_startup_objects()  # as the command line and the window do once their engine exists
    workers = LuaWorkers()
    try:
        # Warm-up: the engine's first run opens its journal connection and starts its threads.
        await engine_run(engine, sequential_workflow(10), {})
        await floor(workers)
        floors, engines = [], []
        for _ in range(REPEATS):
            floors.append(await floor(workers))
            engines.append(await engine_run(engine, document, inputs))
    finally:
        workers.shutdown()
        await engine.aclose()
        store.close()
    return statistics.median(floors), statistics.median(engines)


async def main() -> None:
    global REPEATS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps of the sequential workflow")
    parser.add_argument("--items", type=int, default=10_000, help="items of the fan-out")
    parser.add_argument("--parallelism", type=int, default=32, help="max_parallelism of the fan-out")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="rounds per case; the table shows medians")
    args = parser.parse_args()
    REPEATS = args.repeats

    rows = []
    with tempfile.TemporaryDirectory() as directory:
        floor, engine = await measure(
            Path(directory) / "seq.db",
            sequential_workflow(args.steps),
            {},
            lambda workers: floor_sequential(workers, args.steps),
        )
        rows.append((f"sequential, {args.steps} steps", floor, engine, args.steps))

        floor, engine = await measure(
            Path(directory) / "fan.db",
            fan_out_workflow(args.items, args.parallelism),
            {"items": list(range(args.items))},
            lambda workers: floor_fan_out(workers, args.items, args.parallelism),
        )
        rows.append((f"for_each, {args.items} items, parallelism {args.parallelism}", floor, engine, args.items))

    cpu = _cpu_model()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}")
    print(f"medians of {REPEATS} rounds on a warm engine")
    print(f"{'case':<44}{'floor s':>10}{'engine s':>10}{'ratio':>8}{'overhead/step µs':>19}")
    for name, floor_s, engine_s, count in rows:
        overhead = (engine_s - floor_s) / count * 1e6
        print(f"{name:<44}{floor_s:>10.3f}{engine_s:>10.3f}{engine_s / floor_s:>8.2f}{overhead:>19.1f}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    asyncio.run(main())
