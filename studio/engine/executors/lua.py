"""Sandboxed Lua 5.4 runner for lua_script steps: JSON values in, one JSON value out, with hard limits.

What a script sees
------------------
Each named input is a global and also a field of the table ``inputs`` (``contacts`` and ``inputs.contacts``
are the same table; names that are not Lua identifiers are reachable only as ``inputs["my-name"]``). An input
may not use the name of a global listed below. The script's first ``return`` value is the step's result.

Conversion rules:

* JSON objects become tables with string keys, JSON arrays become sequences indexed from 1.
* JSON null becomes ``json.null``, a unique constant (``tostring(json.null) == "null"``), never ``nil``, so
  ``[1, null, 3]`` keeps three elements. Test for it with ``value == json.null``. Returning ``nil`` or
  ``json.null`` gives null.
* A result table with the keys 1..n is a list; with only string keys it is an object (keys are sorted, so
  results are deterministic; the input's key order is not kept). An empty table is a list ``[]`` unless it
  was made by ``json.object()`` or came from an empty input object; ``json.array(t)`` and ``json.object(t)``
  mark a table's intent, which only matters while it is empty.
* Lua integers stay integers and Lua floats stay floats (``1.0`` stays ``1.0``). NaN and infinities,
  mixed or non-string keys, lists with holes, cycles, functions, coroutines and userdata raise
  :class:`LuaConversionError` naming the path, for example ``result.items[3].f``. Paths use Lua indexing, so
  the first element is ``[1]``. Strings must be UTF-8.

Globals: ``string`` (without ``dump``), ``table``, ``math``, ``utf8``, ``coroutine``, ``json`` (``encode``,
``decode``, ``null``, ``array``, ``object``), ``assert``, ``error``, ``ipairs``, ``next``, ``pairs``,
``select``, ``tonumber``, ``tostring``, ``type``, ``getmetatable``, ``setmetatable``, ``rawequal``,
``rawget``, ``rawlen``, ``rawset``, ``unpack``, ``pcall``, ``xpcall``, ``collectgarbage`` (collect, count,
step and isrunning only), ``print`` and ``log`` (both write one step log line, arguments joined by tabs; at
most 1000 lines per run), ``_G`` and ``_VERSION``. Reading ``os``, ``io``, ``require``, ``package``,
``load``, ``loadstring``, ``dofile``, ``loadfile``, ``debug``, ``python`` or ``warn`` raises an error that
names the global and the reason.

Sandbox
-------
Every run gets a new ``lupa.lua54`` runtime created with ``register_eval=False``,
``register_builtins=False``, an attribute filter that rejects every Python attribute, and ``max_memory``.
User code is compiled as text only (``load`` with mode ``"t"``) into its own environment table; the real
globals, the registry and the bridge functions into Python are reachable only through ``debug``, which user
code never gets. No Python object is reachable from user code, and the bridges return status values instead
of raising, because lupa would hand a raised Python exception to ``pcall`` as a Python object.
The string metatable (shared by all strings, ``("").x``) points at the sandbox's copy of ``string`` and is
protected, so ``getmetatable("")`` returns ``false``. LuaJIT is not used: its compiled loops skip hooks.

Limits: a count hook, installed before user code runs, calls into Python every 10,000 VM instructions
(fewer when an instruction limit is set) to check the deadline, the instruction count and cancellation.
Once a limit is hit, the hook raises on every following instruction, and the sandbox's ``pcall``,
``xpcall``, ``coroutine.resume``/``wrap``/``close`` re-raise after the call returns, so no Lua code can catch
and continue. The same applies to a memory error. Coroutines made by the sandbox's ``coroutine.create`` get
the hook too, which the plain Lua function would not give them. Deep recursion ends with Lua's own "stack
overflow" errors.

NOTE: the hook only runs between VM instructions. One call of a C library function is not interrupted:
most are linear in data that the memory limit bounds, but a backtracking pattern in ``string.find``,
``match``, ``gmatch`` or ``gsub`` on a long string can take far longer than the time limit: with a 0.1 s
limit, ``("a"):rep(500):find(".-.-.-b")`` ran for 33 s on the development machine. ``run_lua`` raises
:class:`LuaTimeoutError` one second after the limit anyway, but the worker thread stays busy until the call
returns. A fix needs a pattern matcher that the hook can interrupt.

One runtime per worker thread, a fresh environment per run
----------------------------------------------------------
Measured with ``bench/bench_lua.py`` on the 2-core development machine while other jobs ran (load
average about 4): a bare ``LuaRuntime`` costs about 35 µs, a sandboxed runtime with the prelude about
105 µs, and a whole trivial run about 160 µs with a new runtime but about 60 µs when the thread's runtime
is reused (about 45 µs on an idle machine). A new runtime per run would take most of the 2 s that the
engine has for a 10,000-item for_each, so each thread keeps its runtime and every run gets a new
environment from the prelude's ``setup()``. Isolation between runs on one runtime rests on these rules:

* everything a script can reach (environment, library copies, ``json`` and ``json.null``, hook, abort
  state) is created per run, and the string metatable is protected and re-pointed at the run's copy;
* ``__gc`` finalizers are rejected, so no code of an earlier run can execute later (Lua 5.4 would also
  run them with hooks off), and ``collectgarbage`` cannot stop the collector or change its mode;
* ``math.randomseed()`` reseeds randomly at the start of each run;
* after any failed run (error, limit, cancellation) the thread drops its runtime, so leftovers of a
  stopped script, or data that a traceback still references, never meet the next run;
* a nested run on the same thread (from a log callback) gets a runtime of its own.

Offloading each run with ``run_lua`` adds the executor round trip, about 130 µs per call under the same
load. The engine runs Lua through :class:`~studio.engine.executors.lua_workers.LuaWorkers` instead, which
runs short scripts on the event loop's thread and hands longer ones to worker threads in batches.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import time
from collections.abc import Callable, Mapping

from studio.engine.executors.lua_errors import (
    JsonValue,
    LuaCancelledError,
    LuaConversionError,
    LuaLimits,
    LuaMemoryError,
    LuaRuntimeError,
    LuaScriptError,
    LuaSyntaxError,
    LuaTimeoutError,
)
from studio.engine.executors.lua_session import CancelSignal, LuaSession

__all__ = [
    "CancelFlag",
    "CancelSignal",
    "JsonValue",
    "LuaCancelledError",
    "LuaConversionError",
    "LuaLimits",
    "LuaMemoryError",
    "LuaRuntimeError",
    "LuaScriptError",
    "LuaSyntaxError",
    "LuaTimeoutError",
    "WorkerRun",
    "run_lua",
    "run_lua_sync",
    "thread_logger",
]

logger = logging.getLogger(__name__)

DEFAULT_LIMITS = LuaLimits()

STUCK_GRACE_S = 1.0
"""Seconds past the time limit after which :func:`run_lua` stops waiting for a worker stuck in C code."""


def run_lua_sync(
    source: str,
    inputs: Mapping[str, JsonValue],
    limits: LuaLimits = DEFAULT_LIMITS,
    *,
    log: Callable[[str], None] | None = None,
    cancel: CancelSignal | None = None,
) -> JsonValue:
    """Run ``source`` with ``inputs`` in a new sandbox on the calling thread and return its result.

    ``log`` receives each print()/log() line on this thread. Setting ``cancel`` stops the script at its next
    limit check with :class:`LuaCancelledError`. Raises a :class:`LuaScriptError` subclass for every failure
    of the script; ``inputs`` must not change while the call runs.
    """
    return LuaSession(limits, log, cancel).run(source, inputs)


async def run_lua(
    source: str,
    inputs: Mapping[str, JsonValue],
    limits: LuaLimits = DEFAULT_LIMITS,
    *,
    log: Callable[[str], None] | None = None,
    executor: concurrent.futures.Executor | None = None,
) -> JsonValue:
    """Run ``source`` like :func:`run_lua_sync` on a worker thread without blocking the event loop.

    ``log`` is called on the event loop's thread, before this coroutine returns. ``executor`` picks the worker
    threads (default: the loop's default executor). Cancelling the awaiting task makes the script stop at its
    next limit check, within about a millisecond of Lua work, and re-raises ``CancelledError`` at once.
    If the script is still running ``STUCK_GRACE_S`` after its time limit (it is inside one long C library
    call, see the module docstring), this raises :class:`LuaTimeoutError` without waiting for the thread.
    """
    loop = asyncio.get_running_loop()
    run = WorkerRun(limits)
    thread_log = thread_logger(loop, log)
    outcome: asyncio.Future[JsonValue] = loop.create_future()
    if executor is None:
        future = loop.run_in_executor(executor, run.execute, source, inputs, thread_log)
        future.add_done_callback(functools.partial(_transfer_outcome, outcome))
    else:
        # Hand the worker's result straight to the loop: one event-loop pass fewer per call than
        # run_in_executor, whose wrapper future resolves first and then schedules our callback.
        submitted = executor.submit(run.execute, source, inputs, thread_log)
        submitted.add_done_callback(functools.partial(_post_outcome, loop, outcome))
    watchdog = loop.call_later(run.wait_budget_s, run.check_stuck, loop, outcome)
    run.watchdog = watchdog
    try:
        return await outcome
    except asyncio.CancelledError:
        run.cancel.set()
        raise
    finally:
        run.watchdog.cancel()


def thread_logger(loop: asyncio.AbstractEventLoop, log: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """Return a log callback for a worker thread that calls ``log`` on ``loop``'s thread, in order."""
    if log is None:
        return None
    callback = log

    def thread_log(line: str) -> None:
        try:
            loop.call_soon_threadsafe(callback, line)
        except RuntimeError:
            logger.debug("Lua log line dropped because the event loop is closed: %s", line)

    return thread_log


class CancelFlag:
    """A flag the loop sets and a worker thread polls, cheaper than a ``threading.Event`` that no thread waits on."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


class WorkerRun:
    """State one run shares with its worker thread, plus the watchdog for runs stuck in C code."""

    def __init__(self, limits: LuaLimits) -> None:
        self.limits = limits
        self.cancel = CancelFlag()
        self.started_at: float | None = None
        self.wait_budget_s = limits.timeout_s + STUCK_GRACE_S
        self.watchdog: asyncio.TimerHandle

    def execute(self, source: str, inputs: Mapping[str, JsonValue], log: Callable[[str], None] | None) -> JsonValue:
        self.started_at = time.monotonic()
        if self.cancel.is_set():
            raise LuaCancelledError("The Lua script was cancelled before it started.")
        return LuaSession(self.limits, log, self.cancel).run(source, inputs)

    def stuck_in_s(self) -> float:
        """Seconds until the run counts as stuck; its time limit counts from when a worker picked it up."""
        started_at = self.started_at
        return self.wait_budget_s if started_at is None else started_at + self.wait_budget_s - time.monotonic()

    def check_stuck(self, loop: asyncio.AbstractEventLoop, outcome: asyncio.Future[JsonValue]) -> None:
        if outcome.done():
            return
        remaining = self.stuck_in_s()
        if remaining > 0:
            self.watchdog = loop.call_later(remaining, self.check_stuck, loop, outcome)
            return
        self.give_up(outcome)

    def give_up(self, outcome: asyncio.Future[JsonValue]) -> None:
        """Fail ``outcome`` with a timeout and leave the worker to finish its C call on its own."""
        self.cancel.set()
        logger.warning(
            "A Lua run is still inside one C library call %.1f s after its time limit; "
            "its worker thread stays busy until that call returns",
            STUCK_GRACE_S,
        )
        outcome.set_exception(
            LuaTimeoutError(
                f"The Lua script ran longer than its time limit of {self.limits.timeout_s:g} s and was stopped. "
                "It was inside one long library call (often string.find, match, gmatch or gsub with a pattern "
                "that backtracks on a long string); simplify the pattern or split the text."
            )
        )


def _post_outcome(
    loop: asyncio.AbstractEventLoop, outcome: asyncio.Future[JsonValue], future: concurrent.futures.Future[JsonValue]
) -> None:
    """Runs on the worker thread: pass a finished call's outcome to the event loop."""
    try:
        loop.call_soon_threadsafe(_transfer_outcome, outcome, future)
    except RuntimeError:
        logger.debug("Lua result dropped because the event loop is closed")


def _transfer_outcome(
    outcome: asyncio.Future[JsonValue], future: asyncio.Future[JsonValue] | concurrent.futures.Future[JsonValue]
) -> None:
    # Retrieve the worker's outcome even when the caller stopped awaiting it (timeout or cancellation),
    # so asyncio does not report an exception that was never retrieved.
    if future.cancelled():
        if not outcome.done():
            outcome.cancel()
        return
    error = future.exception()
    if outcome.done():
        return
    if error is not None:
        outcome.set_exception(error)
    else:
        outcome.set_result(future.result())
