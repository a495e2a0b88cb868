"""Lua source of the sandbox prelude that builds the environment for lua_script steps."""

from __future__ import annotations

from typing import Final

# The prelude runs once in each new LuaRuntime, in the runtime's real global table, before any user code.
# One runtime may then serve many runs on the same thread, each through a fresh setup() call.
# It keeps private references to the dangerous functions it needs (load, debug.sethook, debug.getinfo) in
# local variables, so user code can only reach them through the debug library, which the sandbox leaves out.
#
# The chunk returns {setup = ..., clear_hook = debug.sethook}. Python calls clear_hook() (a C function,
# so no old hook fires) and then setup once per run with that run's bridge functions:
#   tick()          -> nil, or a reason string ("timeout", "instructions", "cancelled") to stop the script
#   emit_log(line)  -> nil; receives one line of print()/log() output
#   decode_json(s)  -> true, value | false, message | "memory", message
#   hook_step       -> number of VM instructions between two tick() calls
# The setup function returns a table with the entry points that Python uses (see its last lines).
PRELUDE_SOURCE: Final[str] = r"""
local raw_load = load
local raw_pcall, raw_xpcall = pcall, xpcall
local raw_error, raw_assert = error, assert
local raw_type, raw_tostring, raw_tonumber = type, tostring, tonumber
local raw_next, raw_pairs, raw_ipairs, raw_select = next, pairs, ipairs, select
local raw_setmetatable, raw_getmetatable = setmetatable, getmetatable
local raw_rawget, raw_rawset, raw_rawequal, raw_rawlen = rawget, rawset, rawequal, rawlen
local raw_collectgarbage = collectgarbage
local sethook, getinfo = debug.sethook, debug.getinfo
local co_create, co_resume, co_close = coroutine.create, coroutine.resume, coroutine.close
local string_format, string_find, string_gsub = string.format, string.find, string.gsub
local table_concat, table_sort, table_pack, table_unpack = table.concat, table.sort, table.pack, table.unpack
local math_type, math_huge = math.type, math.huge
local utf8_len = utf8.len

local raw_randomseed = math.randomseed
-- Captured before the first run protects it; every run points its __index at that run's string copy.
local string_metatable = getmetatable("")
python = nil
package.loaded.python = nil

local MEMORY_ERROR_MESSAGE = "not enough memory"
local SCRIPT_SOURCE = "=lua_script"
local MAX_NESTING = 200

local function setup(tick, emit_log, decode_json, hook_step)
  -- A runtime may serve many runs one after another, so everything a script can reach is made here,
  -- per run. Reseeding keeps a script's math.randomseed() from fixing the numbers of the next run.
  raw_randomseed()

  -- Abort state. Once `reason` is set, the script is being stopped and every hook call raises ABORT.
  local state = {reason = nil}
  local ABORT = raw_setmetatable({}, {
    __metatable = false,
    __tostring = function() return "the Lua script was stopped by the sandbox" end,
  })

  local hook
  local function abort()
    -- Count hook on every instruction from now on: the next instruction after any pcall, resume or
    -- finalizer that caught ABORT raises it again, so the script unwinds to the top.
    sethook(hook, "", 1)
    raw_error(ABORT, 0)
  end

  hook = function()
    if state.reason == nil then
      local reason = tick()
      if reason == nil then return end
      state.reason = reason
    end
    abort()
  end

  -- Re-raise ABORT and memory errors that a protected call caught; pass every other result through.
  local function after_protected(ok, ...)
    if state.reason ~= nil then abort() end
    if not ok and raw_rawequal((...), MEMORY_ERROR_MESSAGE) then
      state.reason = "memory"
      abort()
    end
    return ok, ...
  end

  local FORBIDDEN = {
    os = "lua_script steps cannot run commands, read the clock or touch files",
    io = "lua_script steps cannot read or write files",
    require = "lua_script steps cannot load modules; put the code in the script",
    package = "lua_script steps cannot load modules; put the code in the script",
    load = "lua_script steps cannot compile code at run time",
    loadstring = "lua_script steps cannot compile code at run time",
    dofile = "lua_script steps cannot read files",
    loadfile = "lua_script steps cannot read files",
    debug = "the debug library can break out of the sandbox",
    python = "lua_script steps cannot reach Python objects",
    warn = "use log() or print() to write step log lines",
  }

  local function copy_table(source)
    local copy = {}
    for key, value in raw_next, source do copy[key] = value end
    return copy
  end

  ---------------------------------------------------------------------------------------------------
  -- JSON
  ---------------------------------------------------------------------------------------------------
  local NULL = raw_setmetatable({}, {
    __metatable = "json.null",
    __tostring = function() return "null" end,
    __newindex = function() raw_error("json.null is a constant and cannot be changed", 2) end,
  })
  local ARRAY_MT = {__metatable = "json.array"}
  local OBJECT_MT = {__metatable = "json.object"}

  local ESCAPES = {['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                   ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t"}
  for code = 0, 31 do
    local char = string.char(code)
    if ESCAPES[char] == nil then ESCAPES[char] = string_format("\\u%04x", code) end
  end

  local function path_of_key(path, key)
    if raw_type(key) == "string" and string_find(key, "^[%a_][%w_]*$") then
      return path .. "." .. key
    end
    if raw_type(key) == "string" then
      return path .. "[" .. string_format("%q", key) .. "]"
    end
    return path .. "[" .. raw_tostring(key) .. "]"
  end

  local function fail(path, problem)
    raw_error(path .. ": " .. problem, 0)
  end

  local function encode_string(text, path, out)
    local valid, bad_position = utf8_len(text)
    if valid == nil then
      fail(path, "string is not valid UTF-8 (invalid byte at position " .. bad_position ..
        "); only UTF-8 text can be converted to JSON")
    end
    out[#out + 1] = '"' .. string_gsub(text, '[%c"\\]', ESCAPES) .. '"'
  end

  local function encode_number(number, path, out)
    if math_type(number) == "integer" then
      out[#out + 1] = string_format("%d", number)
      return
    end
    if number ~= number or number == math_huge or number == -math_huge then
      fail(path, "NaN and infinite numbers cannot be converted to JSON")
    end
    local text = string_format("%.14g", number)
    if raw_tonumber(text) ~= number then text = string_format("%.17g", number) end
    if not string_find(text, "[.eEn]") then text = text .. ".0" end
    out[#out + 1] = text
  end

  local encode_value

  -- Classify a table as "array" (keys 1..n), "object" (string keys) or "empty"; raise for anything else.
  local function table_shape(value, path)
    local string_key, integer_count, max_integer = nil, 0, 0
    for key in raw_next, value do
      local key_type = raw_type(key)
      if key_type == "string" then
        string_key = string_key or key
      elseif math_type(key) == "integer" and key >= 1 then
        integer_count = integer_count + 1
        if key > max_integer then max_integer = key end
      else
        fail(path, "table has the key " .. raw_tostring(key) .. " (a " .. (math_type(key) or key_type) ..
          "); JSON objects need string keys and JSON arrays need the integer keys 1..n")
      end
      if string_key ~= nil and integer_count > 0 then
        fail(path, string_format("table mixes string keys (%q) and integer keys; ", string_key) ..
          "use either a list (keys 1..n) or an object (string keys)")
      end
    end
    if string_key ~= nil then return "object" end
    if integer_count == 0 then return "empty" end
    if integer_count ~= max_integer then
      for index = 1, max_integer do
        if raw_rawget(value, index) == nil then
          fail(path, "list has no value at index " .. index .. " but has one at index " .. max_integer ..
            "; put json.null where a value is missing")
        end
      end
    end
    return "array", max_integer
  end

  local function encode_table(value, path, out, depth, visiting)
    if visiting[value] then
      fail(path, "table contains itself (a cycle), which cannot be converted to JSON")
    end
    if depth > MAX_NESTING then
      fail(path, "tables are nested more than " .. MAX_NESTING .. " levels deep")
    end
    visiting[value] = true
    local shape, length = table_shape(value, path)
    if shape == "empty" then
      out[#out + 1] = raw_getmetatable(value) == "json.object" and "{}" or "[]"
    elseif shape == "array" then
      out[#out + 1] = "["
      for index = 1, length do
        if index > 1 then out[#out + 1] = "," end
        encode_value(raw_rawget(value, index), path .. "[" .. index .. "]", out, depth + 1, visiting)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for key in raw_next, value do keys[#keys + 1] = key end
      table_sort(keys)
      out[#out + 1] = "{"
      for position, key in raw_ipairs(keys) do
        if position > 1 then out[#out + 1] = "," end
        local item_path = path_of_key(path, key)
        encode_string(key, item_path, out)
        out[#out + 1] = ":"
        encode_value(raw_rawget(value, key), item_path, out, depth + 1, visiting)
      end
      out[#out + 1] = "}"
    end
    visiting[value] = nil
  end

  encode_value = function(value, path, out, depth, visiting)
    local value_type = raw_type(value)
    if value == nil or raw_rawequal(value, NULL) then
      out[#out + 1] = "null"
    elseif value_type == "boolean" then
      out[#out + 1] = value and "true" or "false"
    elseif value_type == "number" then
      encode_number(value, path, out)
    elseif value_type == "string" then
      encode_string(value, path, out)
    elseif value_type == "table" then
      encode_table(value, path, out, depth, visiting)
    else
      fail(path, value_type .. " values cannot be converted to JSON")
    end
  end

  local function encode(value, root_path)
    local out = {}
    encode_value(value, root_path, out, 0, {})
    return table_concat(out)
  end

  local json = {
    null = NULL,
    array = function(value)
      if value == nil then value = {} end
      if raw_type(value) ~= "table" then raw_error("json.array expects a table, got " .. raw_type(value), 2) end
      return raw_setmetatable(value, ARRAY_MT)
    end,
    object = function(value)
      if value == nil then value = {} end
      if raw_type(value) ~= "table" then raw_error("json.object expects a table, got " .. raw_type(value), 2) end
      return raw_setmetatable(value, OBJECT_MT)
    end,
    encode = function(value)
      local ok, text = raw_pcall(encode, value, "value")
      if not ok then
        if raw_rawequal(text, MEMORY_ERROR_MESSAGE) then after_protected(false, text) end
        raw_error("json.encode: " .. raw_tostring(text), 2)
      end
      return text
    end,
    decode = function(text)
      if raw_type(text) ~= "string" then
        raw_error("json.decode expects a string, got " .. raw_type(text), 2)
      end
      local status, value = decode_json(text)
      if status == "memory" then after_protected(false, MEMORY_ERROR_MESSAGE) end
      if not status then raw_error("json.decode: " .. value, 2) end
      return value
    end,
  }

  ---------------------------------------------------------------------------------------------------
  -- Library tables given to user code (fresh copies, so the script's changes stay in this run)
  ---------------------------------------------------------------------------------------------------
  local function with_missing(library, library_name, missing)
    return raw_setmetatable(library, {__index = function(_, key)
      local reason = missing[key]
      if reason ~= nil then
        raw_error(library_name .. "." .. key .. " is not available in the Lua sandbox: " .. reason, 2)
      end
      return nil
    end})
  end

  local sandbox_string = copy_table(string)
  sandbox_string.dump = nil
  with_missing(sandbox_string, "string", {dump = "lua_script steps cannot produce or load bytecode"})
  -- Method calls on strings ("x"):upper() go through the shared string metatable. Point it at the sandbox
  -- copy and protect it, so getmetatable("") cannot hand out the real string library or let it be changed.
  string_metatable.__index = sandbox_string
  string_metatable.__metatable = false

  local sandbox_table = copy_table(table)
  local sandbox_math = copy_table(math)
  local sandbox_utf8 = copy_table(utf8)

  local sandbox_coroutine = copy_table(coroutine)
  -- Lua 5.4 gives a new coroutine the C hook of its creator, but debug.sethook looks up the Lua hook
  -- function per coroutine, so a coroutine made by the plain create() would run without limits.
  sandbox_coroutine.create = function(body)
    local thread = co_create(body)
    sethook(thread, hook, "", state.reason ~= nil and 1 or hook_step)
    return thread
  end
  sandbox_coroutine.resume = function(thread, ...)
    return after_protected(co_resume(thread, ...))
  end
  sandbox_coroutine.close = function(thread)
    return after_protected(co_close(thread))
  end
  local function unwrap_resumed(ok, ...)
    after_protected(ok, ...)
    if not ok then raw_error((...), 0) end
    return ...
  end
  sandbox_coroutine.wrap = function(body)
    local thread = sandbox_coroutine.create(body)
    return function(...) return unwrap_resumed(co_resume(thread, ...)) end
  end

  local function format_line(...)
    local parts = {}
    for index = 1, raw_select("#", ...) do
      parts[index] = raw_tostring((raw_select(index, ...)))
    end
    return table_concat(parts, "\t")
  end

  -- Lua 5.4 runs __gc finalizers with hooks switched off, so a finalizer could loop past every limit.
  -- A table is only marked for finalization if its metatable has __gc when setmetatable is called.
  local function sandbox_setmetatable(target, metatable)
    if raw_type(metatable) == "table" and raw_rawget(metatable, "__gc") ~= nil then
      raw_error("__gc metamethods are not available in the Lua sandbox: finalizers run outside the " ..
        "script's time limit; use a to-be-closed variable (local x <close>) instead", 2)
    end
    return raw_setmetatable(target, metatable)
  end

  local GARBAGE_OPTIONS = {collect = true, count = true, step = true, isrunning = true}

  local function make_env()
    local env = {
      string = sandbox_string, table = sandbox_table, math = sandbox_math, utf8 = sandbox_utf8,
      coroutine = sandbox_coroutine, json = json,
      assert = raw_assert, error = raw_error, ipairs = raw_ipairs, next = raw_next, pairs = raw_pairs,
      select = raw_select, tonumber = raw_tonumber, tostring = raw_tostring, type = raw_type,
      getmetatable = raw_getmetatable, setmetatable = sandbox_setmetatable,
      rawequal = raw_rawequal, rawget = raw_rawget, rawlen = raw_rawlen, rawset = raw_rawset,
      unpack = table_unpack, _VERSION = _VERSION,
      pcall = function(body, ...) return after_protected(raw_pcall(body, ...)) end,
      xpcall = function(body, handler, ...)
        -- An error raised by the hook calls the message handler while hooks are still off, so a
        -- handler must not run once the script is being stopped: it could loop past every limit.
        local function guarded_handler(err)
          if state.reason ~= nil then return err end
          return handler(err)
        end
        return after_protected(raw_xpcall(body, guarded_handler, ...))
      end,
      print = function(...) emit_log(format_line(...)) end,
      log = function(...) emit_log(format_line(...)) end,
      collectgarbage = function(option, ...)
        option = option or "collect"
        if not GARBAGE_OPTIONS[option] then
          raw_error("collectgarbage(" .. string_format("%q", raw_tostring(option)) ..
            ") is not available in the Lua sandbox; only collect, count, step and isrunning are", 2)
        end
        return raw_collectgarbage(option, ...)
      end,
    }
    env._G = env
    return raw_setmetatable(env, {__index = function(_, name)
      local reason = FORBIDDEN[name]
      if reason ~= nil then raw_error(name .. " is not available in the Lua sandbox: " .. reason, 2) end
      return nil
    end})
  end

  ---------------------------------------------------------------------------------------------------
  -- Entry points for Python
  ---------------------------------------------------------------------------------------------------
  local env = make_env()
  local reserved = {}
  for name in raw_next, env do reserved[name] = true end
  reserved.inputs = true

  local function compile(source)
    return raw_load(source, SCRIPT_SOURCE, "t", env)
  end

  -- Collect the user-code frames of the stack as {line, function name} pairs, innermost first.
  local function script_frames(first_level)
    local frames = {}
    for level = first_level, first_level + 60 do
      local info = getinfo(level, "Sln")
      if info == nil then break end
      if info.source == SCRIPT_SOURCE and info.currentline > 0 then
        frames[#frames + 1] = {info.currentline, info.name or (info.what == "main" and "main chunk" or "?")}
      end
    end
    return frames
  end

  local function describe_error(value)
    if raw_type(value) == "string" then return value end
    local metatable = raw_getmetatable(value)
    if raw_type(metatable) == "table" and raw_rawget(metatable, "__tostring") ~= nil then
      local ok, text = raw_pcall(raw_tostring, value)
      if ok and raw_type(text) == "string" then return text end
    end
    return "(error object is a " .. raw_type(value) .. " value)"
  end

  -- The result stays on the Lua side between run() and encode_result(): a value passed through Python
  -- would come back changed (lupa turns a coroutine into a function, for example).
  local result

  -- Run the compiled script; returns true or false, message, frames.
  local function run(main)
    local frames = {}
    local function handler(err)
      if state.reason == nil and not raw_rawequal(err, ABORT) then
        frames = script_frames(2)
      end
      return err
    end
    sethook(hook, "", hook_step)
    local outcome = table_pack(raw_xpcall(main, handler))
    if outcome[1] then
      result = outcome[2]
      return true
    end
    if raw_rawequal(outcome[2], MEMORY_ERROR_MESSAGE) and state.reason == nil then state.reason = "memory" end
    return false, describe_error(outcome[2]), frames
  end

  local function encode_result()
    local ok, text = raw_pcall(encode, result, "result")
    result = nil
    if ok then return true, text end
    if raw_rawequal(text, MEMORY_ERROR_MESSAGE) and state.reason == nil then state.reason = "memory" end
    return false, describe_error(text)
  end

  return {
    env = env,
    reserved = reserved,
    state = state,
    null = NULL,
    new_array = function() return raw_setmetatable({}, ARRAY_MT) end,
    new_object = function() return raw_setmetatable({}, OBJECT_MT) end,
    compile = compile,
    run = run,
    encode_result = encode_result,
  }
end

return {setup = setup, clear_hook = sethook}
"""
