"""The regex_extract tool: regular-expression matching guarded against catastrophic backtracking."""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import re
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from studio.toolserver import regex_worker
from studio.toolserver.text_tools import check_text_size

MAX_PATTERN_CHARS = 1000
MATCH_TIME_LIMIT_S = 2.0
"""Wall-clock budget for one regex_extract call, including the start of its worker process."""

FlagName = Literal["IGNORECASE", "MULTILINE", "DOTALL", "VERBOSE", "ASCII"]

# `re._parser` is private but stable across CPython 3.11-3.13; it is the only way to inspect a pattern's tree.
_parser: Any = re._parser  # type: ignore[attr-defined]
_constants: Any = re._constants  # type: ignore[attr-defined]
_REPEAT_OPCODES = {_constants.MAX_REPEAT, _constants.MIN_REPEAT}
_UNBOUNDED = _constants.MAXREPEAT


class RegexMatch(BaseModel):
    match: str
    start: int
    end: int
    groups: list[str | None] = Field(description="Numbered groups; null for a group that did not take part.")
    named: dict[str, str | None] = Field(description="Named groups.")


class RegexMatches(BaseModel):
    matches: list[RegexMatch]
    count: int
    truncated: bool = Field(description="True when more than max_matches matches exist.")


def _child_sequences(opcode: Any, argument: Any) -> list[Any]:
    """Return the sub-sequences of a parsed node that can hold repeats (groups, branches, lookarounds)."""
    if opcode in _REPEAT_OPCODES:
        return [argument[2]]
    if opcode == _constants.SUBPATTERN:
        return [argument[-1]]
    if opcode == _constants.BRANCH:
        return list(argument[1])
    if opcode in (_constants.ASSERT, _constants.ASSERT_NOT):
        return [argument[1]]
    return []


def _contains_unbounded_repeat(items: Any) -> bool:
    for opcode, argument in items:
        if opcode in _REPEAT_OPCODES and argument[1] == _UNBOUNDED:
            return True
        if any(_contains_unbounded_repeat(child) for child in _child_sequences(opcode, argument)):
            return True
    return False


def find_nested_quantifier(items: Any) -> bool:
    """Return True when an unbounded repeat contains another unbounded repeat, as in `(a+)+`.

    Such nesting is the usual cause of exponential backtracking. Patterns that backtrack badly
    without nesting, such as `(a|aa)+`, pass this check and are stopped by the time limit.
    """
    for opcode, argument in items:
        if opcode in _REPEAT_OPCODES and argument[1] == _UNBOUNDED and _contains_unbounded_repeat(argument[2]):
            return True
        if any(find_nested_quantifier(child) for child in _child_sequences(opcode, argument)):
            return True
    return False


def _match_in_subprocess(pattern: str, flags: int, text: str, max_matches: int) -> dict[str, Any] | None:
    """Run the match in a child process and kill it after MATCH_TIME_LIMIT_S; None means it timed out.

    Python's `re` has no timeout and a thread cannot be stopped, so a process is the only safe boundary.
    """
    context = multiprocessing.get_context("forkserver")
    # Preloading the small worker module keeps each fork from importing the server's dependencies.
    context.set_forkserver_preload([regex_worker.__name__])
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=regex_worker.match_worker, args=(sender, pattern, flags, text, max_matches), daemon=True
    )
    process.start()
    sender.close()
    try:
        if not receiver.poll(MATCH_TIME_LIMIT_S):
            return None
        result: dict[str, Any] = receiver.recv()
        return result
    except EOFError:
        return None
    finally:
        receiver.close()
        if process.is_alive():
            process.kill()
        process.join()


async def regex_extract(
    pattern: Annotated[str, Field(description=f"Python regular expression, at most {MAX_PATTERN_CHARS} characters.")],
    text: Annotated[str, Field(description="Text to search.")],
    flags: Annotated[list[FlagName], Field(description="Regex flags by name.")] = [],  # noqa: B006
    max_matches: Annotated[int, Field(ge=1, le=10_000, description="Maximum number of matches returned.")] = 100,
) -> RegexMatches:
    """Find every match of a regular expression in a text, with its numbered and named groups."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ToolError(f"pattern has {len(pattern)} characters, more than the maximum of {MAX_PATTERN_CHARS}")
    check_text_size("text", text)
    flag_value = 0
    for name in flags:
        flag_value |= int(getattr(re, name))
    try:
        tree = _parser.parse(pattern, flag_value)
    except re.error as exc:
        raise ToolError(f"invalid regular expression {pattern!r}: {exc}") from None
    if find_nested_quantifier(tree):
        raise ToolError(
            f"pattern {pattern!r} nests an unbounded quantifier inside another (as in '(a+)+'), which can "
            "take exponential time; rewrite it without the nested repeat"
        )
    result = await asyncio.to_thread(_match_in_subprocess, pattern, flag_value, text, max_matches)
    if result is None:
        raise ToolError(
            f"pattern {pattern!r} took longer than {MATCH_TIME_LIMIT_S} s on this text and was stopped; "
            "simplify the pattern or search a shorter text"
        )
    return RegexMatches.model_validate(result)


def register(server: MCPServer) -> None:
    """Add the regex_extract tool to a server."""
    server.add_tool(regex_extract)
