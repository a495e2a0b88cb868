"""Errors, limits and value types shared by the sandboxed Lua runner."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeAlias

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None

MIN_MEMORY_LIMIT_BYTES = 1024 * 1024
"""Smallest memory limit accepted; the sandbox itself needs a few hundred KiB before user code runs."""


class LuaScriptError(Exception):
    """Base class of every error a lua_script step reports; ``message`` is meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LuaSyntaxError(LuaScriptError):
    """The script does not compile; ``line`` is the 1-based line the compiler stopped at, if known."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class LuaRuntimeError(LuaScriptError):
    """The script raised an error; ``line`` is where, ``traceback`` lists the script's frames, innermost first."""

    def __init__(self, message: str, line: int | None, traceback: str) -> None:
        super().__init__(message)
        self.line = line
        self.traceback = traceback


class LuaTimeoutError(LuaScriptError):
    """The script ran past its time limit or its instruction limit."""


class LuaMemoryError(LuaScriptError):
    """The script needed more memory than its memory limit."""


class LuaConversionError(LuaScriptError):
    """An input or the result is not convertible between JSON and Lua; the message names the value's path."""


class LuaCancelledError(LuaScriptError):
    """The script was stopped because the caller cancelled the run."""


@dataclass(frozen=True)
class LuaLimits:
    """Resource limits for one lua_script run.

    ``timeout_s`` is wall-clock seconds from the start of the run (including input and result conversion).
    ``memory_limit_bytes`` caps everything the Lua runtime allocates, the sandbox's own tables included.
    ``instruction_limit`` caps Lua VM instructions; it is checked every few thousand instructions, so a
    script may run slightly past it, and time spent inside one C library call counts as no instructions.
    """

    timeout_s: float = 5.0
    memory_limit_bytes: int = 64 * 1024 * 1024
    instruction_limit: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, int | float):
            raise ValueError(f"timeout_s must be a number of seconds, got {self.timeout_s!r}")
        if not math.isfinite(self.timeout_s) or self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be a finite number above 0, got {self.timeout_s!r}")
        if isinstance(self.memory_limit_bytes, bool) or not isinstance(self.memory_limit_bytes, int):
            raise ValueError(f"memory_limit_bytes must be an integer, got {self.memory_limit_bytes!r}")
        if self.memory_limit_bytes < MIN_MEMORY_LIMIT_BYTES:
            raise ValueError(
                f"memory_limit_bytes must be at least {MIN_MEMORY_LIMIT_BYTES} (1 MiB), got {self.memory_limit_bytes!r}"
            )
        limit = self.instruction_limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"instruction_limit must be None or an integer of at least 1, got {limit!r}")
