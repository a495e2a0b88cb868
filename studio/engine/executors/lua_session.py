"""One sandboxed Lua run: its lupa runtime, its limits, and value conversion in both directions."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import lupa.lua54 as lua54

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
from studio.engine.executors.lua_prelude import PRELUDE_SOURCE

logger = logging.getLogger(__name__)

HOOK_STEP: Final = 10_000
"""VM instructions between two limit checks when no instruction limit is set (an estimated 50-100 µs of Lua)."""

MAX_NESTING: Final = 200
"""Deepest nesting of lists and objects converted in either direction (the Lua prelude uses the same)."""

LOG_LINES_MAX: Final = 1000
LOG_LINE_MAX_CHARS: Final = 8192

_SCRIPT_LINE = re.compile(r"^lua_script:(\d+): ?(.*)$", re.DOTALL)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The Lua runtime carries a compiled copy of the prelude: loading bytecode made by the same Lua build
# skips parsing the prelude in every run. User code is only ever loaded as text.
_prelude_bytecode: bytes | None = None
_prelude_lock = threading.Lock()


def _reject_attribute(obj: object, name: object, is_setting: bool) -> object:
    raise AttributeError("Python attributes are not accessible from the Lua sandbox")


def _new_runtime(memory_limit_bytes: int) -> Any:
    return lua54.LuaRuntime(
        encoding=None,
        register_eval=False,
        register_builtins=False,
        attribute_filter=_reject_attribute,
        unpack_returned_tuples=True,
        max_memory=memory_limit_bytes,
    )


def _prelude() -> bytes:
    global _prelude_bytecode
    with _prelude_lock:
        if _prelude_bytecode is None:
            scratch = _new_runtime(16 * 1024 * 1024)
            dump = scratch.execute(
                b"local source = ... return string.dump(assert(load(source, '=sandbox_prelude', 't')))",
                PRELUDE_SOURCE.encode("utf-8"),
            )
            _prelude_bytecode = bytes(dump)
        return _prelude_bytecode


def _index_path(path: str, index: int) -> str:
    return f"{path}[{index}]"


def _key_path(path: str, key: str) -> str:
    if _IDENTIFIER.match(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


class CancelSignal(Protocol):
    """Cancellation signal that a run polls: a ``threading.Event`` or a plain flag."""

    def is_set(self) -> bool: ...


class _Guard:
    """Limit checks for the Lua count hook. ``tick`` returns a stop reason instead of raising, so Lua cannot catch it."""

    def __init__(self, limits: LuaLimits, cancel: CancelSignal | None) -> None:
        self.deadline = time.monotonic() + limits.timeout_s
        self.instruction_limit = limits.instruction_limit
        self.step = HOOK_STEP
        if limits.instruction_limit is not None:
            self.step = max(1, min(HOOK_STEP, limits.instruction_limit // 10))
        self.instructions = 0
        self.cancel = cancel

    def tick(self) -> bytes | None:
        self.instructions += self.step
        if self.cancel is not None and self.cancel.is_set():
            return b"cancelled"
        if self.instruction_limit is not None and self.instructions > self.instruction_limit:
            return b"instructions"
        if time.monotonic() >= self.deadline:
            return b"timeout"
        return None


class _LogSink:
    """Forwards print()/log() lines to the caller's callback, capped in count and length."""

    def __init__(self, log: Callable[[str], None] | None) -> None:
        self.log = log
        self.count = 0

    def emit(self, line: object) -> None:
        self.count += 1
        if self.count > LOG_LINES_MAX + 1:
            return
        if self.count == LOG_LINES_MAX + 1:
            text = f"(further log lines of this Lua run are dropped: the limit is {LOG_LINES_MAX} lines per run)"
        else:
            raw = line if isinstance(line, bytes) else str(line).encode("utf-8", "replace")
            text = raw.decode("utf-8", "replace")
            if len(text) > LOG_LINE_MAX_CHARS:
                text = text[:LOG_LINE_MAX_CHARS] + f" ... ({len(text) - LOG_LINE_MAX_CHARS} more characters)"
        if self.log is None:
            logger.debug("Lua log: %s", text)
            return
        try:
            self.log(text)
        except Exception:
            logger.exception("The log callback of a Lua run raised; the log line is dropped")


class _ToLua:
    """Converts JSON values to Lua values in one runtime; null becomes the json.null sentinel."""

    def __init__(self, api: Any) -> None:
        self._new_array = api[b"new_array"]
        self._new_object = api[b"new_object"]
        self._null = api[b"null"]

    def release(self) -> None:
        # The decode bridge stored inside the runtime refers to this converter, and this converter refers
        # to the runtime, a cycle that Python's collector cannot see through Lua. Dropping these breaks it.
        self._new_array = self._new_object = self._null = None

    def convert(self, value: object, path: str, depth: int = 0, active: frozenset[int] = frozenset()) -> Any:
        if value is None:
            return self._null
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            if not lua54.LUA_MININTEGER <= value <= lua54.LUA_MAXINTEGER:
                raise LuaConversionError(
                    f"{path}: the integer {value} does not fit in a Lua integer (64 bits); pass it as a string"
                )
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise LuaConversionError(f"{path}: {value!r} is not a JSON number; use null or a string instead")
            return value
        if isinstance(value, str):
            try:
                return value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise LuaConversionError(
                    f"{path}: the string is not valid Unicode text ({exc.reason} at index {exc.start})"
                ) from None
        if isinstance(value, list | tuple | dict):
            return self._convert_container(value, path, depth, active)
        raise LuaConversionError(
            f"{path}: {type(value).__name__} values are not JSON values; "
            "use null, booleans, numbers, strings, lists or objects with string keys"
        )

    def _convert_container(
        self,
        value: list[object] | tuple[object, ...] | dict[object, object],
        path: str,
        depth: int,
        active: frozenset[int],
    ) -> Any:
        if id(value) in active:
            raise LuaConversionError(f"{path}: the value contains itself (a cycle), which JSON cannot represent")
        if depth >= MAX_NESTING:
            raise LuaConversionError(f"{path}: values are nested more than {MAX_NESTING} levels deep")
        active = active | {id(value)}
        if isinstance(value, dict):
            table = self._new_object()
            for key, item in value.items():
                if not isinstance(key, str):
                    raise LuaConversionError(
                        f"{path}: the object key {key!r} is a {type(key).__name__}; JSON object keys must be strings"
                    )
                item_path = _key_path(path, key)
                table[self.convert(key, item_path)] = self.convert(item, item_path, depth + 1, active)
            return table
        table = self._new_array()
        for index, item in enumerate(value, start=1):
            table[index] = self.convert(item, _index_path(path, index), depth + 1, active)
        return table


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


class _DecodeBridge:
    """json.decode for the sandbox; returns status tuples instead of raising, so no Python exception reaches Lua."""

    def __init__(self) -> None:
        self.converter: _ToLua | None = None

    def decode(self, text: object) -> tuple[object, Any]:
        if not isinstance(text, bytes) or self.converter is None:
            return False, b"expects a string"
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            return False, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}".encode()
        except (ValueError, RecursionError) as exc:
            return False, f"invalid JSON: {exc}".encode("utf-8", "replace")
        try:
            return True, self.converter.convert(value, "value")
        except LuaConversionError as exc:
            return False, exc.message.encode("utf-8", "replace")
        except MemoryError:
            return b"memory", None
        except Exception:
            logger.exception("json.decode in the Lua sandbox failed unexpectedly")
            return False, b"internal error while decoding JSON"


def _stop_error(reason: bytes, limits: LuaLimits) -> LuaScriptError:
    if reason == b"memory":
        limit_mib = limits.memory_limit_bytes / (1024 * 1024)
        return LuaMemoryError(
            f"The Lua script needed more than its memory limit of {limit_mib:g} MiB and was stopped. "
            "Keep less data in memory at once (smaller tables and strings) or raise the step's memory limit."
        )
    if reason == b"instructions":
        return LuaTimeoutError(
            f"The Lua script ran more than its limit of {limits.instruction_limit} Lua instructions and was "
            "stopped. Check the script for an endless loop, make it do less work, or raise the instruction limit."
        )
    if reason == b"cancelled":
        return LuaCancelledError("The Lua script was stopped because its run was cancelled.")
    return LuaTimeoutError(
        f"The Lua script ran longer than its time limit of {limits.timeout_s:g} s and was stopped. "
        "Check the script for an endless loop, make it do less work, or raise the step's timeout."
    )


def _syntax_error(message: bytes) -> LuaSyntaxError:
    text = message.decode("utf-8", "replace")
    match = _SCRIPT_LINE.match(text)
    if match is None:
        return LuaSyntaxError(f"Lua syntax error: {text}. Fix the script and run the step again.", None)
    line = int(match.group(1))
    return LuaSyntaxError(
        f"Lua syntax error on line {line}: {match.group(2)}. Fix the script and run the step again.", line
    )


def _runtime_error(message: bytes, frames: Any) -> LuaRuntimeError:
    text = message.decode("utf-8", "replace")
    frame_list: list[tuple[int, str]] = []
    if frames is not None:
        for frame in frames.values():
            name = frame[2]
            frame_list.append((int(frame[1]), name.decode("utf-8", "replace") if isinstance(name, bytes) else "?"))
    traceback = "\n".join(f"  line {line}, in {_frame_name(name)}" for line, name in frame_list)
    match = _SCRIPT_LINE.match(text)
    line: int | None = None
    if match is not None:
        line, text = int(match.group(1)), match.group(2)
    elif frame_list:
        line = frame_list[0][0]
    where = f" on line {line}" if line is not None else ""
    full = f"Lua error{where}: {text}"
    if len(frame_list) > 1:
        full += f"\nLua traceback (innermost first):\n{traceback}"
    return LuaRuntimeError(full, line, traceback)


def _frame_name(name: str) -> str:
    return name if name == "main chunk" else f"function '{name}'"


def _check_call_arguments(source: object, inputs: object) -> None:
    if not isinstance(source, str):
        raise LuaScriptError(f"The Lua script must be a string of Lua source code, got {type(source).__name__}.")
    if not isinstance(inputs, Mapping):
        raise LuaConversionError(f"inputs must be a mapping of input names to JSON values, got {type(inputs).__name__}")


class _ThreadRuntime(threading.local):
    """The runtime that the current thread reuses between runs, with the prelude's entry table."""

    def __init__(self) -> None:
        self.runtime: Any = None
        self.entry: Any = None
        self.busy = False


_thread_runtime = _ThreadRuntime()


class LuaSession:
    """Runs one script on the calling thread. Use once and drop.

    The thread's runtime from an earlier successful run is reused with a fresh environment. A nested run
    on the same thread (from a log callback, say) gets a runtime of its own.
    """

    def __init__(self, limits: LuaLimits, log: Callable[[str], None] | None, cancel: CancelSignal | None):
        self.limits = limits
        self.guard = _Guard(limits, cancel)
        self.sink = _LogSink(log)
        self.runtime: Any = None
        self.api: Any = None
        self.converter: _ToLua | None = None

    def run(self, source: str, inputs: Mapping[str, JsonValue]) -> JsonValue:
        _check_call_arguments(source, inputs)
        slot = _thread_runtime
        reuse = not slot.busy
        slot.busy = slot.busy or reuse
        succeeded = False
        try:
            result = self._run(source, inputs, slot if reuse else None)
            succeeded = True
            return result
        except lua54.LuaMemoryError:
            raise _stop_error(b"memory", self.limits) from None
        except MemoryError:
            raise _stop_error(b"memory", self.limits) from None
        except lua54.LuaError as exc:
            reason = self._stop_reason()
            if reason is not None:
                raise _stop_error(reason, self.limits) from None
            raise LuaScriptError(f"The Lua sandbox failed unexpectedly: {exc}") from exc
        finally:
            if self.converter is not None:
                self.converter.release()
            self.api = self.converter = self.runtime = None
            if reuse:
                slot.busy = False
                if not succeeded:
                    # A failed run may leave a hook in abort mode, or data that a traceback still references.
                    # So the next run on this thread starts from a new runtime.
                    slot.runtime = slot.entry = None

    def _stop_reason(self) -> bytes | None:
        if self.api is None:
            return None
        reason = self.api[b"state"][b"reason"]
        return reason if isinstance(reason, bytes) else None

    def _run(self, source: str, inputs: Mapping[str, JsonValue], slot: _ThreadRuntime | None) -> JsonValue:
        entry = self._open_runtime(slot)
        bridge = _DecodeBridge()
        self.api = entry[b"setup"](self.guard.tick, self.sink.emit, bridge.decode, self.guard.step)
        self.converter = bridge.converter = _ToLua(self.api)
        self._install_inputs(inputs)

        compiled = self.api[b"compile"](source.encode("utf-8", "surrogatepass"))
        if isinstance(compiled, tuple):
            raise _syntax_error(compiled[1])

        outcome = self.api[b"run"](compiled)
        self._raise_if_stopped()
        if outcome is not True:
            raise _runtime_error(outcome[1], outcome[2])

        ok, text = self.api[b"encode_result"]()
        self._raise_if_stopped()
        if not ok:
            problem = text.decode("utf-8", "replace")
            raise LuaConversionError(
                f"The Lua script's result cannot be converted to JSON: {problem}. "
                "Return only nil, booleans, numbers, UTF-8 strings and tables of these."
            )
        result: JsonValue = json.loads(text)
        entry[b"clear_hook"]()
        return result

    def _open_runtime(self, slot: _ThreadRuntime | None) -> Any:
        """Return the prelude's entry table of a runtime ready for this run, reusing the thread's if it has one."""
        if slot is not None and slot.runtime is not None:
            self.runtime = slot.runtime
            self.runtime.set_max_memory(self.limits.memory_limit_bytes)
            entry = slot.entry
        else:
            self.runtime = _new_runtime(self.limits.memory_limit_bytes)
            entry = self.runtime.execute(_prelude())
            if slot is not None:
                slot.runtime, slot.entry = self.runtime, entry
        entry[b"clear_hook"]()
        return entry

    def _raise_if_stopped(self) -> None:
        reason = self._stop_reason()
        if reason is not None:
            raise _stop_error(reason, self.limits)

    def _install_inputs(self, inputs: Mapping[str, JsonValue]) -> None:
        assert self.converter is not None
        env = self.api[b"env"]
        reserved = self.api[b"reserved"]
        table = self.converter.convert(dict(inputs), "inputs")
        env[b"inputs"] = table
        for name in inputs:
            encoded = name.encode("utf-8", "surrogatepass")
            if reserved[encoded]:
                raise LuaConversionError(
                    f"The input name {name!r} is also the name of a Lua global the sandbox provides; "
                    f"rename the input (it would hide the global {name})."
                )
            env[encoded] = table[encoded]
