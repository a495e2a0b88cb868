"""Lua worker threads that take runs from one queue and hand finished runs back to the loop in batches.

:func:`~studio.engine.executors.lua.run_lua` sends each run to a thread pool on its own. That round
trip (submitting, waking a thread, waking the event loop for the result) costs about three times a
trivial run itself, so a 10,000-item ``for_each`` of small scripts would spend most of its time on
hand-offs. :class:`LuaWorkers` keeps the runs of one engine in a queue instead:

* worker threads wait on the queue and take runs until it is empty, so a burst of runs costs one
  thread wake-up, not one per run. An idle worker ends after ``IDLE_EXIT_S``;
* a worker hands finished runs back with one ``call_soon_threadsafe`` for everything finished since
  its last hand-off, at the latest ``HANDOFF_INTERVAL_S`` after the previous one, so the event loop
  is woken once per batch;
* another worker starts only when runs are queued and every worker has been busy with one run for
  ``BUSY_WORKER_S``, as when long scripts occupy them. A burst of short runs starts no threads that
  would only compete with the event loop for the cores of a small machine.

Short runs skip the hand-off altogether. A script whose source has none of the characters
``( { [ " '`` calls no function and builds no table, so it can only read its inputs and compute with
operators. Such a script with small inputs runs first on the event loop's own thread, with
``INLINE_BUDGET_S`` of time and ``INLINE_MAX_INSTRUCTIONS`` Lua instructions. If it needs more,
that attempt is dropped and the run goes to a worker. After ``INLINE_MISSES_ALLOWED`` such runs in a
row, the script runs on workers only. Dropping an attempt is safe because a sandboxed script has no
effect outside its result, and a script that calls nothing cannot even log.

The limits are checked between instructions only, and one call of a library function (a
backtracking ``string.find``, ``string.rep`` of a huge string, ``json.decode`` of a long text) can
run for seconds without reaching a check. That is why scripts that can call anything never run on
the loop's thread, and why large inputs, whose conversion no check covers, keep a script off it too.

Each run keeps the contract of ``run_lua``: limits, cancellation, log lines delivered on the loop
before the run's result, and a timeout for a run stuck in one C library call. One watchdog timer
checks every run in flight, instead of a timer per run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from studio.engine.executors.lua import DEFAULT_LIMITS, WorkerRun, run_lua_sync, thread_logger
from studio.engine.executors.lua_errors import JsonValue, LuaLimits, LuaTimeoutError

logger = logging.getLogger(__name__)

HANDOFF_INTERVAL_S = 0.0005
"""Maximum time a worker keeps finished runs before handing them to the event loop."""

BUSY_WORKER_S = 0.05
"""How long every worker must have been busy with one run before another worker starts for queued runs.

Well above Python's thread switch interval (5 ms): a worker that waits for the interpreter lock
while the event loop holds it looks busy with a trivial run for that long.
"""

INLINE_BUDGET_S = 0.001
"""Time a run may take on the event loop's thread before it is moved to a worker thread."""

INLINE_MAX_INPUT_NODES = 256
"""Maximum number of values (list items, object members, nested values) in the inputs of a run tried inline."""

INLINE_MAX_TEXT = 4096
"""Maximum length of a string in the inputs of a run tried inline."""

INLINE_MAX_INSTRUCTIONS = 1000
"""Lua instructions a run on the loop's thread may execute (the sandbox's own set-up takes 100-200).

The limit is checked every 100 instructions.
"""

INLINE_MISSES_ALLOWED = 2
"""Runs in a row that may exceed the inline limits before a script runs on workers only.

One miss can come from a pause of the whole process (a garbage collection, say) rather than from
the script.
"""

_CALL_OR_TABLE_CHARACTERS = ("(", "{", "[", '"', "'")
"""Characters without which Lua source can neither call a function nor build a table or string literal."""

_SLOW_SCRIPTS_KEPT = 1024
"""How many scripts that exceeded the inline budget are remembered."""

IDLE_EXIT_S = 5.0
"""How long a worker thread waits for a run before it ends."""

WATCHDOG_INTERVAL_S = 0.25
"""Time between two checks for runs stuck in one C library call past their time limit."""

DEFAULT_MAX_THREADS = min(32, (os.cpu_count() or 1) + 4)
"""Maximum number of worker threads of one engine; the same default as a thread pool's."""


@dataclass(eq=False, slots=True)
class _Job:
    source: str
    inputs: Mapping[str, JsonValue]
    run: WorkerRun
    log: Callable[[str], None] | None
    outcome: asyncio.Future[JsonValue]


_Finished = tuple[_Job, JsonValue, BaseException | None]


class LuaWorkers:
    """Runs sandboxed Lua scripts for one event loop on up to ``max_threads`` worker threads.

    Call :meth:`run` from the loop; call :meth:`shutdown` once no more runs will be started.
    """

    def __init__(
        self,
        max_threads: int = DEFAULT_MAX_THREADS,
        *,
        thread_name_prefix: str = "studio-lua",
        inline_budget_s: float = INLINE_BUDGET_S,
    ) -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, got {max_threads}")
        if inline_budget_s < 0:
            raise ValueError(f"inline_budget_s must be 0 (never inline) or more, got {inline_budget_s}")
        self.max_threads = max_threads
        self.inline_budget_s = inline_budget_s
        self.inline_runs = 0
        """Runs that finished on the event loop's thread."""
        self._slow_scripts: dict[str, int] = {}
        """Scripts that exceeded the inline limits, with the number of such runs in a row."""
        self._inline_limits_for: dict[LuaLimits, LuaLimits] = {}
        self._thread_name_prefix = thread_name_prefix
        self._started_threads = 0
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers = 0
        self._running: dict[int, WorkerRun] = {}
        """The run each worker thread executes, by thread id."""
        self._in_flight: set[_Job] = set()
        self._tick: asyncio.TimerHandle | None = None
        self._held_up_check: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def workers(self) -> int:
        """Worker threads alive right now."""
        return self._workers

    async def run(
        self,
        source: str,
        inputs: Mapping[str, JsonValue],
        limits: LuaLimits = DEFAULT_LIMITS,
        *,
        log: Callable[[str], None] | None = None,
    ) -> JsonValue:
        """Run ``source`` with ``inputs`` on a worker thread; the same contract as ``run_lua``.

        Raises:
            RuntimeError: :meth:`shutdown` was called.
            LuaScriptError: the script failed or hit a limit (a subclass names which).
        """
        if self._closed:
            raise RuntimeError("the Lua workers were shut down; start the engine again to run Lua steps")
        if self.inline_budget_s > 0 and self._may_run_inline(source, inputs, limits):
            try:
                return self._run_inline(source, inputs, limits)
            except _TooSlowInline:
                pass  # the attempt is dropped and a worker runs the script
        loop = asyncio.get_running_loop()
        run = WorkerRun(limits)
        outcome: asyncio.Future[JsonValue] = loop.create_future()
        job = _Job(source, inputs, run, thread_logger(loop, log), outcome)
        self._jobs.put(job)
        with self._lock:
            started = self._workers == 0
            if started:
                self._start_worker()
        if not started and self._held_up_check is None and self._workers < self.max_threads:
            self._held_up_check = loop.call_later(BUSY_WORKER_S, self._check_held_up, loop)
        self._in_flight.add(job)
        if self._tick is None:
            self._tick = loop.call_later(WATCHDOG_INTERVAL_S, self._check, loop)
        try:
            return await outcome
        except asyncio.CancelledError:
            run.cancel.set()
            raise
        finally:
            self._in_flight.discard(job)

    def shutdown(self) -> None:
        """Cancel the queued runs and let the worker threads end after their current run."""
        self._closed = True
        for timer in (self._tick, self._held_up_check):
            if timer is not None:
                timer.cancel()
        self._tick = self._held_up_check = None
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                continue
            job.run.cancel.set()
            loop = job.outcome.get_loop()
            if not job.outcome.done() and not loop.is_closed():
                loop.call_soon_threadsafe(_cancel_outcome, job.outcome)
        with self._lock:
            for _ in range(self._workers):
                self._jobs.put(None)

    # -- the loop's side ---------------------------------------------------------------------

    def _may_run_inline(self, source: str, inputs: Mapping[str, JsonValue], limits: LuaLimits) -> bool:
        # A script's own limits are enforced on a worker, whose checks are not the inline ones.
        if limits.instruction_limit is not None or limits.timeout_s <= self.inline_budget_s:
            return False
        if self._slow_scripts.get(source, 0) >= INLINE_MISSES_ALLOWED:
            return False
        if any(character in source for character in _CALL_OR_TABLE_CHARACTERS):
            return False
        return _fits_inline(inputs, [INLINE_MAX_INPUT_NODES])

    def _inline_limits(self, limits: LuaLimits) -> LuaLimits:
        inline = self._inline_limits_for.get(limits)
        if inline is None:
            inline = LuaLimits(self.inline_budget_s, limits.memory_limit_bytes, INLINE_MAX_INSTRUCTIONS)
            if len(self._inline_limits_for) < _SLOW_SCRIPTS_KEPT:
                self._inline_limits_for[limits] = inline
        return inline

    def _run_inline(self, source: str, inputs: Mapping[str, JsonValue], limits: LuaLimits) -> JsonValue:
        """Run on the loop's thread within the inline budget; raise _TooSlowInline when it needs longer.

        The script calls no function, so it cannot print or log: there are no log lines to keep.
        """
        try:
            result = run_lua_sync(source, inputs, self._inline_limits(limits))
        except LuaTimeoutError:
            self._slow_scripts[source] = self._slow_scripts.pop(source, 0) + 1
            if len(self._slow_scripts) > _SLOW_SCRIPTS_KEPT:
                del self._slow_scripts[next(iter(self._slow_scripts))]
            raise _TooSlowInline from None
        if source in self._slow_scripts:
            del self._slow_scripts[source]
        self.inline_runs += 1
        return result

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give up on runs stuck past their time limit, and add a worker when every one is held up."""
        self._tick = None
        if self._closed or not self._in_flight:
            return
        for job in list(self._in_flight):
            if not job.outcome.done() and job.run.started_at is not None and job.run.stuck_in_s() <= 0:
                job.run.give_up(job.outcome)
        self._add_worker_if_held_up()
        self._tick = loop.call_later(WATCHDOG_INTERVAL_S, self._check, loop)

    def _check_held_up(self, loop: asyncio.AbstractEventLoop) -> None:
        self._held_up_check = None
        if self._closed:
            return
        self._add_worker_if_held_up()
        if not self._jobs.empty() and self._workers < self.max_threads:
            self._held_up_check = loop.call_later(BUSY_WORKER_S, self._check_held_up, loop)

    def _add_worker_if_held_up(self) -> None:
        if self._jobs.empty():
            return
        now = time.monotonic()
        with self._lock:
            if self._workers >= self.max_threads:
                return
            busy = list(self._running.values())
            if len(busy) < self._workers:
                return  # a worker is between runs and takes the next one
            if all(run.started_at is not None and now - run.started_at >= BUSY_WORKER_S for run in busy):
                self._start_worker()

    def _start_worker(self) -> None:
        # Called with the lock held.
        name = f"{self._thread_name_prefix}_{self._started_threads}"
        thread = threading.Thread(target=self._work, name=name, daemon=True)
        thread.start()
        self._started_threads += 1
        self._workers += 1

    # -- a worker thread's side --------------------------------------------------------------

    def _work(self) -> None:
        me = threading.get_ident()
        finished: list[_Finished] = []
        handed_off_at = time.monotonic()
        while True:
            try:
                job = self._jobs.get(timeout=IDLE_EXIT_S)
            except queue.Empty:
                with self._lock:
                    if not self._jobs.empty():
                        continue
                    # Retire while holding the lock: a run queued from now on starts a new worker.
                    self._workers -= 1
                return
            if job is None:  # shutdown
                with self._lock:
                    self._workers -= 1
                break
            self._running[me] = job.run
            try:
                finished.append(_execute(job))
            finally:
                del self._running[me]
            now = time.monotonic()
            if self._jobs.empty() or now - handed_off_at >= HANDOFF_INTERVAL_S:
                _hand_off(finished)
                finished = []
                handed_off_at = now
        if finished:
            _hand_off(finished)


class _TooSlowInline(Exception):
    """A run tried on the loop's thread needed longer than the inline budget."""


def _fits_inline(value: JsonValue | Mapping[str, JsonValue], budget: list[int]) -> bool:
    """Return whether ``value`` has at most ``budget[0]`` values and no long string, counting ``budget`` down."""
    budget[0] -= 1
    if budget[0] < 0:
        return False
    if isinstance(value, str):
        return len(value) <= INLINE_MAX_TEXT
    if isinstance(value, Mapping):
        return all(_fits_inline(item, budget) for item in value.values())
    if isinstance(value, list):
        return all(_fits_inline(item, budget) for item in value)
    return True


def _execute(job: _Job) -> _Finished:
    try:
        return job, job.run.execute(job.source, job.inputs, job.log), None
    except BaseException as error:  # handed to the awaiting coroutine, which re-raises it
        return job, None, error


def _hand_off(finished: list[_Finished]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[_Finished]] = {}
    for entry in finished:
        by_loop.setdefault(entry[0].outcome.get_loop(), []).append(entry)
    for loop, entries in by_loop.items():
        try:
            loop.call_soon_threadsafe(_deliver, entries)
        except RuntimeError:
            logger.debug("%d Lua results dropped because the event loop is closed", len(entries))


def _deliver(finished: list[_Finished]) -> None:
    for job, value, error in finished:
        if job.outcome.done():
            continue
        if error is None:
            job.outcome.set_result(value)
        else:
            job.outcome.set_exception(error)


def _cancel_outcome(outcome: asyncio.Future[JsonValue]) -> None:
    if not outcome.done():
        outcome.cancel()
