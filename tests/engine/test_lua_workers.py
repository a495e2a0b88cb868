"""Tests of LuaWorkers: queued runs on shared worker threads, batched hand-off, limits and cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator

import pytest

from studio.engine.executors import lua_workers
from studio.engine.executors.lua import STUCK_GRACE_S, LuaLimits, LuaRuntimeError, LuaTimeoutError
from studio.engine.executors.lua_workers import LuaWorkers

# Margin over a time limit within which a stopped script must have returned (machine load included).
STOP_MARGIN_S = 1.0


@pytest.fixture
async def workers() -> AsyncIterator[LuaWorkers]:
    """Workers that never run a script on the loop's thread, so every run takes the queue."""
    pool = LuaWorkers(max_threads=3, inline_budget_s=0)
    yield pool
    pool.shutdown()


@pytest.fixture
async def inline_workers() -> AsyncIterator[LuaWorkers]:
    pool = LuaWorkers(max_threads=2)
    yield pool
    pool.shutdown()


async def test_results_match_inputs_in_a_burst(workers: LuaWorkers) -> None:
    source = "local total = 0 for _, v in ipairs(values) do total = total + v end return {id = id, total = total}"
    results = await asyncio.gather(
        *(workers.run(source, {"id": n, "values": list(range(n % 50))}) for n in range(2000))
    )

    assert results == [{"id": n, "total": sum(range(n % 50))} for n in range(2000)]


async def test_burst_of_short_runs_uses_one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    handoffs: list[int] = []
    real_hand_off = lua_workers._hand_off

    def counting_hand_off(finished: list[lua_workers._Finished]) -> None:
        handoffs.append(len(finished))
        real_hand_off(finished)

    monkeypatch.setattr(lua_workers, "_hand_off", counting_hand_off)
    pool = LuaWorkers(max_threads=4, thread_name_prefix="burst-test-lua", inline_budget_s=0)
    try:
        # A script of some milliseconds keeps the worker busy while the burst queues up behind it.
        first = asyncio.ensure_future(pool.run("local t = 0 for i = 1, 2000000 do t = t + 1 end return t", {}))
        await asyncio.sleep(0)
        results = await asyncio.gather(*(pool.run("return n", {"n": n}) for n in range(500)))
        threads = [thread for thread in threading.enumerate() if thread.name.startswith("burst-test-lua")]
        assert await first == 2_000_000
    finally:
        pool.shutdown()

    assert results == list(range(500))
    # A second worker starts only if the first script held the worker for 50 ms (a loaded machine).
    assert len(threads) <= 2, "short runs should not start more worker threads"
    assert sum(handoffs) == 501
    assert len(handoffs) < 250, f"finished runs should reach the loop in batches, got {len(handoffs)} hand-offs"


async def test_log_lines_arrive_on_loop_before_result(workers: LuaWorkers) -> None:
    loop_thread = threading.get_ident()
    lines: list[tuple[str, int]] = []

    result = await workers.run(
        "print('first') log('second', 2) return 3", {}, log=lambda line: lines.append((line, threading.get_ident()))
    )

    assert result == 3
    assert lines == [("first", loop_thread), ("second\t2", loop_thread)]


async def test_script_error_reaches_only_its_caller(workers: LuaWorkers) -> None:
    runs = [workers.run("if n == 3 then error('three') end return n", {"n": n}) for n in range(6)]
    results = await asyncio.gather(*runs, return_exceptions=True)

    assert results[:3] == [0, 1, 2]
    assert isinstance(results[3], LuaRuntimeError)
    assert "three" in results[3].message
    assert results[4:] == [4, 5]


async def test_short_run_skips_busy_worker(workers: LuaWorkers) -> None:
    long_run = asyncio.ensure_future(workers.run("while true do end", {}, LuaLimits(timeout_s=3)))
    await asyncio.sleep(0.05)  # the first worker is now inside the endless loop

    started = time.monotonic()
    assert await workers.run("return 'quick'", {}) == "quick"
    waited = time.monotonic() - started

    assert waited < 1.0, f"a short run waited {waited:.2f} s behind a long one"
    long_run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long_run


async def test_time_limit_counts_from_pickup_not_queueing() -> None:
    pool = LuaWorkers(max_threads=1, inline_budget_s=0)
    try:
        busy = pool.run("while true do end", {}, LuaLimits(timeout_s=1.0))
        queued = [pool.run("return 7", {}, LuaLimits(timeout_s=0.3)) for _ in range(3)]
        results = await asyncio.gather(busy, *queued, return_exceptions=True)
    finally:
        pool.shutdown()

    assert isinstance(results[0], LuaTimeoutError)
    assert results[1:] == [7, 7, 7]


async def test_cancelling_a_queued_run_never_starts_it() -> None:
    pool = LuaWorkers(max_threads=1, inline_budget_s=0)
    try:
        started = asyncio.Event()
        busy = asyncio.ensure_future(
            pool.run("print('go') while true do end", {}, LuaLimits(timeout_s=2), log=lambda _: started.set())
        )
        await asyncio.wait_for(started.wait(), timeout=5)
        lines: list[str] = []
        queued = asyncio.ensure_future(pool.run("print('ran') return 1", {}, log=lines.append))
        await asyncio.sleep(0)
        queued.cancel()
        busy.cancel()
        for task in (queued, busy):
            with pytest.raises(asyncio.CancelledError):
                await task
        # The worker is free again once the cancelled endless loop stopped.
        assert await asyncio.wait_for(pool.run("return 2", {}), timeout=3) == 2
    finally:
        pool.shutdown()

    assert lines == []


async def test_stuck_library_call_times_out(workers: LuaWorkers) -> None:
    # One backtracking string.find call runs for seconds without reaching the count hook.
    source = "return (('a'):rep(300):find('.-.-.-b'))"
    limits = LuaLimits(timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(LuaTimeoutError) as caught:
        await workers.run(source, {}, limits)
    elapsed = time.monotonic() - started

    assert "inside one long library call" in caught.value.message
    assert elapsed < limits.timeout_s + STUCK_GRACE_S + lua_workers.WATCHDOG_INTERVAL_S + STOP_MARGIN_S
    # Another worker serves new runs while the stuck one finishes its call.
    assert await asyncio.wait_for(workers.run("return 1", {}), timeout=3) == 1


async def test_shutdown_refuses_new_runs() -> None:
    pool = LuaWorkers(max_threads=1)
    assert await pool.run("return 1", {}) == 1
    pool.shutdown()

    with pytest.raises(RuntimeError, match="shut down"):
        await pool.run("return 1", {})


async def test_shutdown_cancels_queued_runs() -> None:
    pool = LuaWorkers(max_threads=1, inline_budget_s=0)
    started = asyncio.Event()
    busy = asyncio.ensure_future(
        pool.run("print('go') while true do end", {}, LuaLimits(timeout_s=1), log=lambda _: started.set())
    )
    await asyncio.wait_for(started.wait(), timeout=5)
    queued = asyncio.ensure_future(pool.run("return 1", {}))
    await asyncio.sleep(0)

    pool.shutdown()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(queued, timeout=3)
    with pytest.raises(LuaTimeoutError):
        await busy


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_threads must be at least 1, got 0"):
        LuaWorkers(max_threads=0)
    with pytest.raises(ValueError, match="inline_budget_s must be 0"):
        LuaWorkers(inline_budget_s=-1)


# --- runs on the loop's thread ------------------------------------------------------------------------


async def test_short_run_finishes_inline(inline_workers: LuaWorkers) -> None:
    result = await inline_workers.run("return n * 2", {"n": 21})

    assert result == 42
    assert inline_workers.inline_runs == 1
    assert inline_workers.workers == 0


async def test_slow_script_moves_to_worker(inline_workers: LuaWorkers) -> None:
    source = "local t = 0 for i = 1, n do t = t + 1 end return t"

    assert await inline_workers.run(source, {"n": 5_000_000}) == 5_000_000
    assert inline_workers.inline_runs == 0
    assert inline_workers.workers == 1
    # One miss may be a hiccup of the process: a short run of the script is tried inline again.
    assert await inline_workers.run(source, {"n": 3}) == 3
    assert inline_workers.inline_runs == 1
    # Two misses in a row: the script runs on workers only, even with little work.
    for _ in range(2):
        assert await inline_workers.run(source, {"n": 5_000_000}) == 5_000_000
    assert await inline_workers.run(source, {"n": 3}) == 3
    assert inline_workers.inline_runs == 1


@pytest.mark.parametrize(
    ("source", "inputs"),
    [
        ("return (text:find('b'))", {"text": "abc"}),
        ("print(n) return n", {"n": 1}),
        ("return {n}", {"n": 1}),
        ("return n .. 'x'", {"n": 1}),
        ("return n + 1", {"n": list(range(1000))}),
        ("return #text", {"text": "x" * 10_000}),
    ],
    ids=["method-call", "print", "table", "string-literal", "many-values", "long-text"],
)
async def test_scripts_that_may_block_never_run_inline(
    inline_workers: LuaWorkers, source: str, inputs: dict[str, object]
) -> None:
    with contextlib.suppress(LuaRuntimeError):
        await inline_workers.run(source, inputs)

    assert inline_workers.inline_runs == 0
    assert inline_workers.workers == 1


async def test_inline_script_error_is_raised(inline_workers: LuaWorkers) -> None:
    with pytest.raises(LuaRuntimeError) as caught:
        await inline_workers.run("return n + missing", {"n": 1})

    assert "missing" in caught.value.message
    assert inline_workers.workers == 0


async def test_tiny_time_limit_runs_on_worker(inline_workers: LuaWorkers) -> None:
    with pytest.raises(LuaTimeoutError):
        await inline_workers.run("while true do end", {}, LuaLimits(timeout_s=0.0005))

    assert inline_workers.inline_runs == 0
    assert inline_workers.workers == 1


@pytest.mark.parametrize(
    "source",
    [
        "local n = 0 for i = 1, 100 do n = n + #(('ab'):rep(10000000)) end return n",
        "return #string['fi' .. 'nd'](('a'):rep(350), '.-.-.-b') ",
        "local s = text for i = 1, 12 do s = s .. s end return #s",
    ],
    ids=["library-calls", "hidden-find", "long-concatenation"],
)
async def test_loop_stays_responsive(inline_workers: LuaWorkers, source: str) -> None:
    # Measure the largest gap between ticks of a 5 ms timer while the script runs.
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.ensure_future(tick())
    await asyncio.sleep(0.02)
    try:
        with contextlib.suppress(LuaTimeoutError):
            await inline_workers.run(source, {"text": "x" * 4000}, LuaLimits(timeout_s=0.3))
    finally:
        ticker.cancel()

    # Run inline, these scripts held the loop for 1-6 s; the margin allows for a loaded machine.
    assert max(gaps) < 0.25, f"the event loop was blocked for {max(gaps):.2f} s"
