"""Benchmark of the sandboxed Lua runner: runtime creation, per-run cost, and a 10,000-run batch.

Run with ``.venv/bin/python bench/bench_lua.py``. Ratios are against a bare ``lupa.lua54.LuaRuntime()``
created in the same process, so numbers from machines of different speed stay comparable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable

import lupa.lua54 as lua54

from studio.engine.executors import lua_session
from studio.engine.executors.lua import LuaLimits, run_lua, run_lua_sync

REPEATS = 3000
BATCH = 10_000
LIMITS = LuaLimits()


def per_call_us(action: Callable[[], object], repeats: int = REPEATS) -> float:
    for _ in range(repeats // 10):
        action()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            action()
        best = min(best, (time.perf_counter() - started) / repeats * 1e6)
    return best


def fresh_runtime_run() -> object:
    # Dropping the thread's runtime forces the next run to build a new one, as a pool-less design would.
    lua_session._thread_runtime.runtime = None
    lua_session._thread_runtime.entry = None
    return run_lua_sync("return 1", {}, LIMITS)


def sandbox_runtime_with_prelude() -> object:
    runtime = lua_session._new_runtime(LIMITS.memory_limit_bytes)
    return runtime.execute(lua_session._prelude())


async def batch_seconds(workers: int) -> float:
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as executor:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(run_lua("return item * 2", {"item": n}, LIMITS, executor=executor) for n in range(BATCH))
        )
        elapsed = time.perf_counter() - started
    assert results == [n * 2 for n in range(BATCH)]
    return elapsed


def main() -> None:
    baseline = per_call_us(lua54.LuaRuntime)
    rows = [
        ("bare LuaRuntime() (baseline)", baseline),
        ("sandboxed runtime + prelude", per_call_us(sandbox_runtime_with_prelude)),
        ("trivial run, fresh runtime each run", per_call_us(fresh_runtime_run)),
        ("trivial run, thread's runtime reused", per_call_us(lambda: run_lua_sync("return 1", {}, LIMITS))),
        (
            "run with a small input object, reused",
            per_call_us(lambda: run_lua_sync("return x", {"x": {"a": 1, "b": [1, 2, 3]}}, LIMITS)),
        ),
    ]
    print(f"{'measurement':42} {'µs per call':>12} {'x baseline':>11}")
    for name, micros in rows:
        print(f"{name:42} {micros:12.1f} {micros / baseline:11.2f}")
    for workers in (1, 2):
        seconds = asyncio.run(batch_seconds(workers))
        print(
            f"{BATCH} run_lua calls, {workers} worker thread(s): {seconds:.2f} s ({seconds / BATCH * 1e6:.0f} µs each)"
        )


if __name__ == "__main__":
    main()
