"""Tests of the sandboxed Lua runner: conversions, sandbox escapes, limits, logging and cancellation."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
import time

import pytest

from studio.engine.executors.lua import (
    STUCK_GRACE_S,
    LuaCancelledError,
    LuaConversionError,
    LuaLimits,
    LuaMemoryError,
    LuaRuntimeError,
    LuaScriptError,
    LuaSyntaxError,
    LuaTimeoutError,
    run_lua,
    run_lua_sync,
)

SHORT = LuaLimits(timeout_s=0.5)
# Margin over the time limit within which a stopped script must have returned (machine load included).
STOP_MARGIN_S = 1.0


def run_timed(source: str, limits: LuaLimits) -> tuple[LuaScriptError, float]:
    started = time.monotonic()
    with pytest.raises(LuaScriptError) as caught:
        run_lua_sync(source, {}, limits)
    return caught.value, time.monotonic() - started


# --- Conversions -----------------------------------------------------------------------------------------


def test_nested_objects_round_trip() -> None:
    value = {"user": {"name": "Ada", "tags": ["a", "b"], "address": {"city": "Zürich", "zip": "8000"}}}

    assert run_lua_sync("return inputs.value", {"value": value}) == value


def test_list_with_nulls_keeps_positions() -> None:
    items = [1, None, 3, None]

    assert run_lua_sync("return items", {"items": items}) == items
    assert run_lua_sync("return #items", {"items": items}) == 4
    assert run_lua_sync("return items[2] == json.null", {"items": items}) is True
    assert run_lua_sync("return tostring(json.null)", {}) == "null"


def test_object_null_values_keep_keys() -> None:
    assert run_lua_sync("return record", {"record": {"a": None, "b": 1}}) == {"a": None, "b": 1}


def test_integers_and_floats_keep_types() -> None:
    inputs = {"i": 1, "f": 1.0, "big": 2**63 - 1, "small": -(2**63), "tiny": 0.1, "neg_zero": -0.0}
    types = run_lua_sync("return {math.type(i), math.type(f), math.type(big), math.type(tiny)}", inputs)

    assert types == ["integer", "float", "integer", "float"]
    result = run_lua_sync("return {i, f, big, small, tiny, neg_zero, 3 // 2, 3 / 2, 2^53}", inputs)
    assert result == [1, 1.0, 2**63 - 1, -(2**63), 0.1, -0.0, 1, 1.5, 2.0**53]
    assert [type(item) for item in result] == [int, float, int, int, float, float, int, float, float]
    assert math.copysign(1.0, result[5]) == -1.0


def test_float_precision_round_trips() -> None:
    values = [1 / 3, 1e300, 5e-324, 123456789.125, 2.5e-7]

    assert run_lua_sync("return values", {"values": values}) == values


def test_unicode_strings_round_trip() -> None:
    text = 'héllo wörld ✓ 日本語 🎉 \u0000 \n \t " \\'

    assert run_lua_sync("return text", {"text": text}) == text
    assert run_lua_sync("return utf8.len(text)", {"text": text}) == len(text)
    assert run_lua_sync('return "snow ☃"', {}) == "snow ☃"


def test_empty_tables() -> None:
    assert run_lua_sync("return {}", {}) == []
    assert run_lua_sync("return json.object()", {}) == {}
    assert run_lua_sync("return json.array()", {}) == []
    assert run_lua_sync("return {a = json.object({}), b = json.array({})}", {}) == {"a": {}, "b": []}
    assert run_lua_sync("return {empty_object, empty_list}", {"empty_object": {}, "empty_list": []}) == [{}, []]


def test_marked_tables_follow_keys_when_not_empty() -> None:
    assert run_lua_sync("local t = json.object() t.a = 1 return t", {}) == {"a": 1}
    assert run_lua_sync("local t = json.object() t[1] = 'x' return t", {}) == ["x"]


def test_result_object_keys_are_sorted() -> None:
    text = run_lua_sync("return json.encode({b = 1, a = 2, c = {z = 1, y = 2}})", {})

    assert text == '{"a":2,"b":1,"c":{"y":2,"z":1}}'


def test_nil_result_is_null() -> None:
    assert run_lua_sync("local x = 1", {}) is None
    assert run_lua_sync("return nil", {}) is None
    assert run_lua_sync("return json.null", {}) is None


def test_inputs_are_globals_and_table() -> None:
    inputs = {"contacts": [{"name": "A"}], "my-name": "x"}

    assert run_lua_sync("return rawequal(contacts, inputs.contacts)", inputs) is True
    assert run_lua_sync('return inputs["my-name"]', inputs) == "x"
    assert run_lua_sync("return contacts[1].name", inputs) == "A"


@pytest.mark.parametrize("name", ["print", "string", "json", "inputs", "pcall"])
def test_input_name_hiding_global_rejected(name: str) -> None:
    with pytest.raises(LuaConversionError) as caught:
        run_lua_sync("return 1", {name: 1})

    assert repr(name) in caught.value.message
    assert "rename the input" in caught.value.message


@pytest.mark.parametrize(
    ("inputs", "path", "problem"),
    [
        ({"x": float("nan")}, "inputs.x", "not a JSON number"),
        ({"x": [1, float("inf")]}, "inputs.x[2]", "not a JSON number"),
        ({"x": {"a": {1: "b"}}}, "inputs.x.a", "keys must be strings"),
        ({"x": 2**64}, "inputs.x", "does not fit in a Lua integer"),
        ({"x": {"k": {1, 2}}}, "inputs.x.k", "set values are not JSON values"),
        ({"x": "\ud800"}, "inputs.x", "not valid Unicode"),
        ({"x": {"odd key": object()}}, 'inputs.x["odd key"]', "object values are not JSON values"),
    ],
)
def test_input_conversion_errors_name_path(inputs: dict[str, object], path: str, problem: str) -> None:
    with pytest.raises(LuaConversionError) as caught:
        run_lua_sync("return 1", inputs)  # type: ignore[arg-type]

    assert caught.value.message.startswith(path + ":")
    assert problem in caught.value.message


def test_input_cycle_rejected() -> None:
    looped: list[object] = [1]
    looped.append(looped)

    with pytest.raises(LuaConversionError) as caught:
        run_lua_sync("return 1", {"x": looped})  # type: ignore[dict-item]

    assert "inputs.x[2]: the value contains itself" in caught.value.message


def test_deep_input_rejected() -> None:
    nested: object = 1
    for _ in range(300):
        nested = [nested]

    with pytest.raises(LuaConversionError) as caught:
        run_lua_sync("return 1", {"x": nested})  # type: ignore[dict-item]

    assert "nested more than 200 levels" in caught.value.message


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("return {items = {1, 2, {f = print}}}", "result.items[3].f: function values cannot be converted"),
        ("return {a = 1, 2}", "result: table mixes string keys"),
        ("return {[1.5] = 1}", "result: table has the key 1.5 (a float)"),
        ("return {[true] = 1}", "result: table has the key true (a boolean)"),
        ("return {[0] = 'zero'}", "result: table has the key 0"),
        ("return {1, nil, 3}", "result: list has no value at index 2 but has one at index 3"),
        ("local t = {} t.self = t return t", "result.self: table contains itself"),
        ("return {x = 0/0}", "result.x: NaN and infinite numbers"),
        ("return {x = math.huge}", "result.x: NaN and infinite numbers"),
        ("return {['a b'] = '\\xff'}", 'result["a b"]: string is not valid UTF-8'),
        ("return coroutine.create(print)", "result: thread values cannot be converted"),
    ],
)
def test_result_conversion_errors_name_path(source: str, expected: str) -> None:
    with pytest.raises(LuaConversionError) as caught:
        run_lua_sync(source, {})

    assert expected in caught.value.message


def test_deep_result_rejected() -> None:
    with pytest.raises(LuaConversionError) as caught:
        run_lua_sync("local t = {} for i = 1, 300 do t = {t} end return t", {})

    assert "nested more than 200 levels" in caught.value.message


def test_shared_table_twice_is_not_a_cycle() -> None:
    assert run_lua_sync("local t = {1} return {t, t}", {}) == [[1], [1]]


def test_json_helpers_in_lua() -> None:
    decoded = run_lua_sync(
        """
        local v = json.decode('{"a": [1, null, 2.5], "b": "\\\\u00e9"}')
        return {is_null = v.a[2] == json.null, kind = math.type(v.a[1]), b = v.b, back = json.encode(v)}
        """,
        {},
    )

    assert decoded == {"is_null": True, "kind": "integer", "b": "é", "back": '{"a":[1,null,2.5],"b":"é"}'}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", "json.decode: invalid JSON at line 1 column 2"),
        ("[NaN]", "NaN is not valid JSON"),
        ("[1e999]", "value[1]: inf is not a JSON number"),
        ("123456789012345678901234567890", "does not fit in a Lua integer"),
    ],
)
def test_json_decode_errors_are_catchable_strings(text: str, expected: str) -> None:
    source = "local ok, err = pcall(json.decode, text) return {ok, type(err), err}"

    ok, kind, message = run_lua_sync(source, {"text": text})  # type: ignore[misc]

    assert ok is False
    assert kind == "string"
    assert expected in message


def test_json_encode_error_names_path() -> None:
    with pytest.raises(LuaRuntimeError) as caught:
        run_lua_sync("return json.encode({a = {print}})", {})

    assert "json.encode: value.a[1]: function values cannot be converted" in caught.value.message


# --- Sandbox ---------------------------------------------------------------------------------------------

FORBIDDEN = ["os", "io", "require", "package", "load", "loadstring", "dofile", "loadfile", "debug", "python", "warn"]


@pytest.mark.parametrize("name", FORBIDDEN)
def test_forbidden_global_raises_clear_error(name: str) -> None:
    with pytest.raises(LuaRuntimeError) as caught:
        run_lua_sync(f"return {name}", {})

    assert f"{name} is not available in the Lua sandbox: " in caught.value.message
    assert caught.value.line == 1


@pytest.mark.parametrize("name", FORBIDDEN)
def test_forbidden_global_is_absent_from_env(name: str) -> None:
    assert run_lua_sync(f"return rawget(_G, '{name}') == nil", {}) is True


def test_os_execute_fails_with_reason() -> None:
    with pytest.raises(LuaRuntimeError) as caught:
        run_lua_sync('os.execute("touch /tmp/should-not-exist")', {})

    assert "os is not available in the Lua sandbox: lua_script steps cannot run commands" in caught.value.message


@pytest.mark.parametrize(
    "source",
    [
        "return string.dump(function() end)",
        "return ('').dump(function() end)",
        "local s = 'x' return s:dump()",
    ],
)
def test_string_dump_unavailable(source: str) -> None:
    with pytest.raises(LuaRuntimeError) as caught:
        run_lua_sync(source, {})

    assert "string.dump is not available in the Lua sandbox" in caught.value.message


def test_string_metatable_is_protected() -> None:
    assert run_lua_sync("return getmetatable('')", {}) is False
    assert run_lua_sync("return ('abc'):upper()", {}) == "ABC"
    with pytest.raises(LuaRuntimeError) as caught:
        run_lua_sync("return getmetatable('').__index", {})
    assert "attempt to index a boolean value" in caught.value.message
    with pytest.raises(LuaRuntimeError):
        run_lua_sync("setmetatable('', {})", {})


def test_string_methods_see_sandbox_copy_only() -> None:
    source = "string.upper = function() return 'patched' end return ('x'):upper()"

    assert run_lua_sync(source, {}) == "patched"
    assert run_lua_sync("return ('x'):upper()", {}) == "X"


def test_bytecode_cannot_be_loaded() -> None:
    source = "return load('\\27Lua\\84\\0', 'x', 'b')"

    with pytest.raises(LuaRuntimeError) as caught:
        run_lua_sync(source, {})

    assert "load is not available in the Lua sandbox" in caught.value.message


def test_no_userdata_reachable_from_globals() -> None:
    source = """
    local seen, found = {}, {}
    local function walk(value, path)
      if type(value) == "userdata" then found[#found + 1] = path end
      if type(value) ~= "table" or seen[value] then return end
      seen[value] = true
      for key, item in next, value do walk(item, path .. "." .. tostring(key)) end
      local mt = getmetatable(value)
      if type(mt) == "table" then walk(mt, path .. "<mt>") end
    end
    walk(_G, "_G")
    return found
    """

    assert run_lua_sync(source, {}) == []


def test_gc_metamethod_rejected() -> None:
    with pytest.raises(LuaRuntimeError) as caught:
        run_lua_sync("setmetatable({}, {__gc = function() while true do end end}) collectgarbage()", {})

    assert "__gc metamethods are not available in the Lua sandbox" in caught.value.message


def test_collectgarbage_limited_options() -> None:
    assert run_lua_sync("return type(collectgarbage('count'))", {}) == "number"
    with pytest.raises(LuaRuntimeError) as caught:
        run_lua_sync("collectgarbage('stop')", {})
    assert 'collectgarbage("stop") is not available' in caught.value.message


def test_runs_do_not_share_state() -> None:
    run_lua_sync(
        """
        leaked = "global"
        string.leaked = "string"
        rawset(json.null, "leaked", true)
        math.randomseed(42)
        return 1
        """,
        {},
    )

    seen = run_lua_sync("return {leaked == nil, string.leaked == nil, rawget(json.null, 'leaked') == nil}", {})
    assert seen == [True, True, True]
    seeded = run_lua_sync("math.randomseed(42) return {math.random(1, 1000000), math.random(1, 1000000)}", {})
    fresh = run_lua_sync("return {math.random(1, 1000000), math.random(1, 1000000)}", {})
    assert fresh != seeded


def test_run_after_failed_run_works() -> None:
    run_timed("while true do end", SHORT)

    assert run_lua_sync("return 1 + 1", {}) == 2


def test_nested_run_from_log_callback() -> None:
    inner_results: list[object] = []

    def log(line: str) -> None:
        inner_results.append(run_lua_sync("return text .. '!'", {"text": line}))

    assert run_lua_sync("print('a') local x = {1, 2} print('b') return x", {}, log=log) == [1, 2]
    assert inner_results == ["a!", "b!"]


# --- Limits ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "while true do end",
        "while true do pcall(function() while true do end end) end",
        "while true do xpcall(function() while true do end end, function() while true do end end) end",
        "coroutine.wrap(function() while true do end end)()",
        "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
        "while true do pcall(coroutine.wrap(function() while true do end end)) end",
        "local t = setmetatable({}, {__index = function(t, k) while true do end end}) while true do pcall(function() return t.x end) end",
        "while true do pcall(error) end",
        "local function f() pcall(f) end while true do f() end",
        "xpcall(function() error('x') end, function() while true do end end)",
        "local x <close> = setmetatable({}, {__close = function() while true do end end}) while true do end",
        "while true do pcall(function() "
        "local x <close> = setmetatable({}, {__close = function() while true do end end}) while true do end end) end",
        "local co = coroutine.wrap(function() "
        "local x <close> = setmetatable({}, {__close = function() while true do end end}) coroutine.yield() end) "
        "co() while true do end",
        "local t = {} for i = 1, 1000 do t[i] = i end while true do table.sort(t, function(a, b) while true do end end) end",
        "while true do ('x'):rep(100):gsub('.', function() while true do end end) end",
    ],
)
def test_endless_loop_stops_with_timeout(source: str) -> None:
    error, elapsed = run_timed(source, SHORT)

    assert isinstance(error, LuaTimeoutError)
    assert "time limit of 0.5 s" in error.message
    assert elapsed < SHORT.timeout_s + STOP_MARGIN_S


def test_timeout_not_swallowed_by_pcall_result() -> None:
    source = """
    local ok, err = pcall(function() while true do end end)
    return "caught: " .. tostring(err)
    """

    error, _ = run_timed(source, SHORT)

    assert isinstance(error, LuaTimeoutError)


def test_instruction_limit() -> None:
    limits = LuaLimits(instruction_limit=100_000)

    assert run_lua_sync("local n = 0 for i = 1, 1000 do n = n + i end return n", {}, limits) == 500500
    error, _ = run_timed("for i = 1, 1e9 do end", limits)
    assert isinstance(error, LuaTimeoutError)
    assert "limit of 100000 Lua instructions" in error.message


def test_memory_bomb_stops_with_memory_error() -> None:
    source = 'local t = {} while true do t[#t + 1] = string.rep("x", 1e6) end'

    error, _ = run_timed(source, LuaLimits(memory_limit_bytes=32 * 1024 * 1024))

    assert isinstance(error, LuaMemoryError)
    assert "memory limit of 32 MiB" in error.message
    assert run_lua_sync("return 'still alive'", {}) == "still alive"


def test_memory_error_not_swallowed_by_pcall() -> None:
    source = 'local ok = pcall(string.rep, "x", 1e9) return ok'

    with pytest.raises(LuaMemoryError):
        run_lua_sync(source, {})


def test_memory_error_not_swallowed_by_coroutine() -> None:
    source = 'local ok = coroutine.resume(coroutine.create(function() return ("x"):rep(1e9) end)) return ok'

    with pytest.raises(LuaMemoryError):
        run_lua_sync(source, {})


def test_huge_string_rep_fails_cleanly() -> None:
    with pytest.raises((LuaRuntimeError, LuaMemoryError)):
        run_lua_sync('return #string.rep("x", 1e12)', {})

    assert run_lua_sync("return 1", {}) == 1


def test_deep_recursion_is_runtime_error() -> None:
    with pytest.raises(LuaRuntimeError) as caught:
        run_lua_sync("local function f(n) return 1 + f(n + 1) end return f(1)", {})

    assert "stack overflow" in caught.value.message


@pytest.mark.parametrize(
    "source",
    [
        "local function f() return ('x'):gsub('.', f) end return f()",
        "local t = setmetatable({}, {}) getmetatable(t).__index = function(s, k) return s[k] end return t.x",
        "local function f() return tostring(setmetatable({}, {__tostring = f})) end return f()",
    ],
)
def test_c_stack_overflow_is_runtime_error(source: str) -> None:
    with pytest.raises(LuaRuntimeError) as caught:
        run_lua_sync(source, {})

    assert "stack overflow" in caught.value.message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout_s": 0}, "timeout_s must be a finite number above 0"),
        ({"timeout_s": float("inf")}, "timeout_s must be a finite number above 0"),
        ({"memory_limit_bytes": 1000}, "memory_limit_bytes must be at least"),
        ({"instruction_limit": 0}, "instruction_limit must be None or an integer of at least 1"),
    ],
)
def test_limits_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LuaLimits(**kwargs)  # type: ignore[arg-type]


# --- Errors ----------------------------------------------------------------------------------------------


def test_syntax_error_names_line() -> None:
    with pytest.raises(LuaSyntaxError) as caught:
        run_lua_sync("local x = 1\nlocal y = = 2\nreturn y", {})

    assert caught.value.line == 2
    assert caught.value.message.startswith("Lua syntax error on line 2: unexpected symbol near '='")


def test_runtime_error_names_line_and_traceback() -> None:
    source = "local function inner(t)\n  return t.missing.field\nend\n\nlocal value = inner({})\nreturn value\n"

    with pytest.raises(LuaRuntimeError) as caught:
        run_lua_sync(source, {})

    assert caught.value.line == 2
    assert "attempt to index a nil value (field 'missing')" in caught.value.message
    assert "line 2, in function 'inner'" in caught.value.traceback
    assert "line 5, in main chunk" in caught.value.traceback


def test_error_call_message_and_line() -> None:
    with pytest.raises(LuaRuntimeError) as caught:
        run_lua_sync("\n\nerror('contact list is empty')", {})

    assert caught.value.message == "Lua error on line 3: contact list is empty"
    assert caught.value.line == 3


def test_error_with_table_value() -> None:
    with pytest.raises(LuaRuntimeError) as caught:
        run_lua_sync("local x = 1\nerror({code = 7})", {})

    assert "(error object is a table value)" in caught.value.message
    assert caught.value.line == 2


def test_source_must_be_string() -> None:
    with pytest.raises(LuaScriptError, match="must be a string of Lua source code"):
        run_lua_sync(b"return 1", {})  # type: ignore[arg-type]


# --- Logging, async, cancellation, concurrency -----------------------------------------------------------


def test_print_and_log_reach_callback() -> None:
    lines: list[str] = []

    run_lua_sync("print('a', 1, nil, true) log('b') print(json.null, 2.5)", {}, log=lines.append)

    assert lines == ["a\t1\tnil\ttrue", "b", "null\t2.5"]


def test_log_lines_are_capped() -> None:
    lines: list[str] = []

    run_lua_sync("for i = 1, 1500 do print(i) end print(string.rep('y', 10000))", {}, log=lines.append)

    assert len(lines) == 1001
    assert lines[999] == "1000"
    assert "further log lines of this Lua run are dropped" in lines[1000]


def test_long_log_line_truncated() -> None:
    lines: list[str] = []

    run_lua_sync("print(string.rep('y', 10000))", {}, log=lines.append)

    assert lines[0].startswith("y" * 8192 + " ... (1808 more characters)")


async def test_run_lua_logs_on_loop_thread() -> None:
    threads: list[int] = []
    lines: list[str] = []

    def log(line: str) -> None:
        threads.append(threading.get_ident())
        lines.append(line)

    result = await run_lua("print('hello') return x * 2", {"x": 21}, log=log)

    assert result == 42
    assert lines == ["hello"]
    assert threads == [threading.get_ident()]


async def test_run_lua_does_not_block_loop() -> None:
    started = asyncio.Event()

    task = asyncio.ensure_future(
        run_lua("print('started') while true do end", {}, LuaLimits(timeout_s=2), log=lambda _: started.set())
    )
    await asyncio.wait_for(started.wait(), timeout=5)

    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_run_lua_timeout_error() -> None:
    with pytest.raises(LuaTimeoutError):
        await run_lua("while true do end", {}, SHORT)


async def test_run_lua_gives_up_on_stuck_pattern_call() -> None:
    # One backtracking string.find call runs for seconds without reaching the count hook.
    source = "return (('a'):rep(300):find('.-.-.-b'))"
    limits = LuaLimits(timeout_s=0.2)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        started = time.monotonic()
        with pytest.raises(LuaTimeoutError) as caught:
            await run_lua(source, {}, limits, executor=executor)
        elapsed = time.monotonic() - started

    assert "inside one long library call" in caught.value.message
    assert elapsed < limits.timeout_s + STUCK_GRACE_S + STOP_MARGIN_S


async def test_run_lua_time_limit_starts_on_worker() -> None:
    limits = LuaLimits(timeout_s=0.3)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        # The only worker is busy for 2 s, longer than the queued runs' limit plus the grace period.
        busy = run_lua("while true do end", {}, LuaLimits(timeout_s=2), executor=executor)
        queued = [run_lua("return 7", {}, limits, executor=executor) for _ in range(3)]
        results = await asyncio.gather(busy, *queued, return_exceptions=True)

    assert isinstance(results[0], LuaTimeoutError)
    assert results[1:] == [7, 7, 7]


async def test_cancel_stops_lua_thread() -> None:
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        task = asyncio.ensure_future(
            run_lua(
                "print('started') while true do end",
                {},
                LuaLimits(timeout_s=60),
                log=lambda _: started.set(),
                executor=executor,
            )
        )
        await asyncio.wait_for(started.wait(), timeout=5)

        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The executor's only thread can take this job only after the Lua script stopped.
        await asyncio.wait_for(loop.run_in_executor(executor, lambda: None), timeout=2)
        freed_after = time.monotonic() - cancelled_at

    assert freed_after < 1.0


def test_cancel_event_in_sync_run() -> None:
    cancel = threading.Event()

    def log(line: str) -> None:
        cancel.set()

    with pytest.raises(LuaCancelledError):
        run_lua_sync("print('go') while true do end", {}, LuaLimits(timeout_s=60), log=log, cancel=cancel)


async def test_concurrent_runs_are_independent() -> None:
    source = """
    counter = (counter or 0) + 1
    local total = 0
    for _, value in ipairs(values) do total = total + value end
    return {id = id, total = total, counter = counter}
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as executor:
        results = await asyncio.gather(
            *(run_lua(source, {"id": n, "values": list(range(n))}, executor=executor) for n in range(200))
        )

    assert results == [{"id": n, "total": sum(range(n)), "counter": 1} for n in range(200)]
