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
``match``, ``gmatch`` or ``gsub`` on a long string can take far longer than the time limit
(for example ``("a"):rep(1e5):find(".-.-.-b")``). ``run_lua`` then still occupies its worker thread until
the call returns.

Fresh runtime per run, no pool
------------------------------
Measured with ``bench/bench_lua.py`` on the 2-core development machine: creating a ``LuaRuntime`` costs
about 30 µs, and a whole trivial run (runtime, prelude from cached bytecode, inputs, result) costs about
120 µs, so 10,000 runs take about 1.2 s of one core. Reusing a runtime per worker thread would save most of
that, but leftover state (finalizers and coroutines of an earlier run, the shared string metatable, the
``json.null`` constant, memory accounting) would have to be scrubbed perfectly between runs. A fresh runtime
makes isolation hold by construction, so the runner does not pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
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
from studio.engine.executors.lua_session import LuaSession

__all__ = [
    "JsonValue",
    "LuaCancelledError",
    "LuaConversionError",
    "LuaLimits",
    "LuaMemoryError",
    "LuaRuntimeError",
    "LuaScriptError",
    "LuaSyntaxError",
    "LuaTimeoutError",
    "run_lua",
    "run_lua_sync",
]

logger = logging.getLogger(__name__)

DEFAULT_LIMITS = LuaLimits()


def run_lua_sync(
    source: str,
    inputs: Mapping[str, JsonValue],
    limits: LuaLimits = DEFAULT_LIMITS,
    *,
    log: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
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
    """
    loop = asyncio.get_running_loop()
    cancel = threading.Event()
    thread_log: Callable[[str], None] | None = None
    if log is not None:
        callback = log

        def thread_log(line: str) -> None:
            try:
                loop.call_soon_threadsafe(callback, line)
            except RuntimeError:
                logger.debug("Lua log line dropped because the event loop is closed: %s", line)

    future = loop.run_in_executor(executor, _run_in_worker, source, inputs, limits, thread_log, cancel)
    try:
        return await future
    except asyncio.CancelledError:
        cancel.set()
        raise


def _run_in_worker(
    source: str,
    inputs: Mapping[str, JsonValue],
    limits: LuaLimits,
    log: Callable[[str], None] | None,
    cancel: threading.Event,
) -> JsonValue:
    return LuaSession(limits, log, cancel).run(source, inputs)
