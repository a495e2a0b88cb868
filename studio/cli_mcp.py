"""The ``studio mcp`` commands: the server catalog, instances, mcpServers import/export, start, tools and calls.

Exit codes: 0 success, 1 a tool call returned an error result or a server failed to start, 2 invalid
usage or input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_USAGE = 2


class McpCliError(Exception):
    """An error shown as one line on stderr, with exit code 2."""


def _out(text: str) -> None:
    """Write one line of command output to standard output."""
    sys.stdout.write(f"{text}\n")


def _err(text: str) -> None:
    """Write one line of errors, warnings or notes to standard error."""
    sys.stderr.write(f"{text}\n")


def add_commands(subparsers: Any) -> None:
    """Add the ``mcp`` command and its subcommands to the studio's subparsers."""
    mcp = subparsers.add_parser("mcp", help="manage MCP servers: catalog, instances, import/export, try tools")
    commands = mcp.add_subparsers(dest="mcp_command")

    catalog = commands.add_parser("catalog", help="list the MCP server catalog (built-in and custom entries)")
    catalog.add_argument("--json", action="store_true", help="print JSON")

    importing = commands.add_parser("import", help="import an mcpServers JSON file (Claude Desktop, Cursor, VS Code)")
    importing.add_argument("file", help="the JSON file, for example claude_desktop_config.json or .vscode/mcp.json")
    importing.add_argument("--format", choices=("claude", "cursor", "vscode"), help="file format (default: detected)")

    exporting = commands.add_parser("export", help="write the instances as an mcpServers JSON file, without secrets")
    exporting.add_argument("-o", "--output", help="file to write (default: standard output)")
    exporting.add_argument("--format", choices=("claude", "cursor", "vscode"), default="cursor", help="client format")

    instances = commands.add_parser("instances", help="list the project's MCP instances")
    instances.add_argument("--json", action="store_true", help="print JSON")

    _add_add_command(commands)

    bind = commands.add_parser("bind", help="bind a connection's secret to an env variable or header of an instance")
    bind.add_argument("instance", help="instance name or id")
    target = bind.add_mutually_exclusive_group(required=True)
    target.add_argument("--env", help="environment variable name")
    target.add_argument("--header", help="HTTP header name")
    bind.add_argument("--connection", required=True, help="connection name or id (see 'studio connections list')")

    _add_set_command(commands)

    remove = commands.add_parser("remove", help="delete an instance with its profiles and bindings")
    remove.add_argument("instance", help="instance name or id")
    remove.add_argument("--force", action="store_true", help="delete it even when workflow drafts or versions use it")

    for name, text in (
        ("start", "start an instance, print its handshake and tools, then stop it"),
        ("tools", "list an instance's tools with their input schemas"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("instance", help="instance name or id")
        command.add_argument("--profile", help="config profile (default: the instance's default profile)")
        command.add_argument("--json", action="store_true", help="print JSON")
    commands.choices["tools"].add_argument(
        "--cached", action="store_true", help="list the tools cached at the last start instead of starting the server"
    )

    call = commands.add_parser("call", help="call one tool of an instance and print the raw result")
    call.add_argument("instance", help="instance name or id")
    call.add_argument("tool", help="tool name")
    call.add_argument("--args", default="{}", help="tool arguments as a JSON object (default: {})")
    call.add_argument("--profile", help="config profile (default: the instance's default profile)")
    call.add_argument("--timeout", type=float, help="time limit of the call in seconds (default: the instance's)")


def _add_add_command(commands: Any) -> None:
    add = commands.add_parser("add", help="add an instance of a catalog entry, or of a new stdio command or remote URL")
    add.add_argument("name", help="instance name")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--entry", help="catalog entry name or id, for example 'Studio tools'")
    source.add_argument(
        "--command", dest="server_command", help="executable of a new stdio server; give its arguments with --arg"
    )
    source.add_argument("--url", help="URL of a new remote server")
    add.add_argument("--arg", action="append", default=[], help="argument for --command (repeatable)")
    add.add_argument("--cwd", help="working directory of a stdio server")
    add.add_argument(
        "--transport",
        choices=("auto", "http", "sse"),
        default="auto",
        help="transport of --url: streamable HTTP, legacy SSE, or auto to probe the server (default: auto)",
    )
    add.add_argument("--profile", default="default", help="name of the profile that --env and --profile-arg fill")
    add.add_argument("--env", action="append", default=[], help="plain env variable NAME=VALUE (repeatable)")
    add.add_argument("--profile-arg", action="append", default=[], help="extra argument of the profile (repeatable)")
    add.add_argument("--connect-timeout", type=float, default=30.0, help="handshake time limit in seconds")
    add.add_argument("--call-timeout", type=float, help="time limit of one tool call in seconds (default: none)")
    add.add_argument(
        "--max-call-time",
        type=float,
        help="hard limit of one tool call in seconds, however often progress restarts its time limit (default: 1 hour)",
    )
    add.add_argument(
        "--no-progress-extends", action="store_true", help="do not restart the call time limit on progress"
    )
    add.add_argument("--allow-sampling", action="store_true", help="let the server request LLM completions")


def _add_set_command(commands: Any) -> None:
    change = commands.add_parser("set", help="change an instance's time limits or its allow-sampling switch")
    change.add_argument("instance", help="instance name or id")
    change.add_argument("--connect-timeout", type=float, help="handshake time limit in seconds")
    call = change.add_mutually_exclusive_group()
    call.add_argument("--call-timeout", type=float, help="time limit of one tool call in seconds")
    call.add_argument("--no-call-timeout", action="store_true", help="remove the time limit of one tool call")
    change.add_argument(
        "--max-call-time",
        type=float,
        help="hard limit of one tool call in seconds, however often progress restarts its time limit",
    )
    change.add_argument(
        "--progress-extends",
        action=argparse.BooleanOptionalAction,
        help="whether progress from the server restarts the call time limit",
    )
    change.add_argument(
        "--allow-sampling",
        action=argparse.BooleanOptionalAction,
        help="whether the server may request LLM completions from the default LLM",
    )


def handle(args: argparse.Namespace) -> int | None:
    """Run an ``mcp`` command; return None when the command is not ``mcp``."""
    if getattr(args, "command", None) != "mcp":
        return None
    from studio.mcp.errors import McpConfigError, McpNotFoundError, McpProbeError
    from studio.secrets import SecretsError

    try:
        return _dispatch(args)
    except (McpCliError, McpConfigError, McpNotFoundError, McpProbeError, SecretsError) as error:
        _err(f"error: {error}")
        return EXIT_USAGE


def _dispatch(args: argparse.Namespace) -> int:
    command = args.mcp_command
    if command is None:
        raise McpCliError(
            "give an mcp command: catalog, import, export, instances, add, bind, set, remove, start, tools or call"
        )
    store = _open_store(args)
    try:
        if command in ("start", "tools", "call"):
            return asyncio.run(_live_command(store, args))
        handlers = {
            "catalog": _cmd_catalog,
            "import": _cmd_import,
            "export": _cmd_export,
            "instances": _cmd_instances,
            "add": _cmd_add,
            "bind": _cmd_bind,
            "set": _cmd_set,
            "remove": _cmd_remove,
        }
        return handlers[command](store, args)
    finally:
        store.close()


def _open_store(args: argparse.Namespace) -> Any:
    import os

    from sqlalchemy.exc import DatabaseError

    from studio.store import default_database_path, open_store

    db = getattr(args, "db", None) or os.environ.get("STUDIO_DB")
    path = Path(db) if db else default_database_path()
    try:
        return open_store(path)
    except (OSError, DatabaseError) as error:
        reason = str(error.orig) if isinstance(error, DatabaseError) else str(error)
        raise McpCliError(
            f"cannot open the database '{path}': {reason}; pass --db with the path of a writable SQLite file"
        ) from None


# -- catalog and instances ------------------------------------------------------------------------


def _cmd_catalog(store: Any, args: argparse.Namespace) -> int:
    from studio.mcp.catalog import list_entries

    entries = list_entries(store)
    if args.json:
        rows = [
            {"id": e.id, "name": e.name, "transport": e.transport, "launch": e.launch_label, "builtin": e.builtin}
            for e in entries
        ]
        _out(json.dumps(rows, indent=2))
        return 0
    for entry in entries:
        kind = "built-in" if entry.builtin else "custom"
        _out(f"{entry.name}  [{entry.transport}, {kind}]  {entry.launch_label}")
    return 0


def _cmd_instances(store: Any, args: argparse.Namespace) -> int:
    from studio.mcp.instances import list_instances
    from studio.mcp.tool_cache import cached_tools

    instances = list_instances(store)
    if args.json:
        rows = []
        for instance in instances:
            cached = cached_tools(store, instance.id)
            rows.append(
                {
                    "id": instance.id,
                    "name": instance.name,
                    "transport": instance.transport,
                    "server_url": instance.server_url,
                    "profiles": sorted(instance.profiles),
                    "default_profile": instance.default_profile,
                    "bindings": [
                        {"target": b.target, "name": b.name, "connection_id": b.connection_id}
                        for b in instance.bindings
                    ],
                    "cached_tools": None if cached is None else len(cached.tools),
                }
            )
        _out(json.dumps(rows, indent=2))
        return 0
    if not instances:
        _out(
            "No MCP instances. Add one with 'studio mcp add NAME --entry \"Studio tools\"' or 'studio mcp import FILE'."
        )
    for instance in instances:
        unbound = [b.name for b in instance.bindings if b.connection_id is None]
        note = f"  needs a connection for {', '.join(unbound)}" if unbound else ""
        _out(f"{instance.id}  {instance.name}  [{instance.transport}]  {instance.server_url}{note}")
    return 0


def _cmd_add(store: Any, args: argparse.Namespace) -> int:
    from studio.mcp.catalog import add_entry, detect_remote_transport, get_entry
    from studio.mcp.instances import (
        Profile,
        Timeouts,
        check_profile,
        check_timeouts,
        create_instance,
        list_instances,
    )

    profile = Profile(args.profile, env=_parse_env(args.env), args=tuple(args.profile_arg))
    timeouts = Timeouts(args.connect_timeout, args.call_timeout, not args.no_progress_extends, args.max_call_time)
    # Checked before a new catalog entry is written, so invalid input leaves nothing behind.
    check_profile(profile, args.name)
    check_timeouts(timeouts)
    if args.name in {instance.name for instance in list_instances(store)}:
        raise McpCliError(f"an MCP instance named {args.name!r} exists already; choose another name")
    if args.entry:
        entry = get_entry(store, args.entry)
    elif args.server_command:
        entry = add_entry(store, args.name, "stdio", command=args.server_command, args=args.arg, cwd=args.cwd)
    else:
        transport = args.transport
        if transport == "auto":
            transport = asyncio.run(detect_remote_transport(args.url))
        entry = add_entry(store, args.name, transport, url=args.url)
    instance = create_instance(
        store,
        entry,
        name=args.name,
        profiles=[profile],
        timeouts=timeouts,
        allow_sampling=args.allow_sampling,
        cwd=args.cwd if args.entry else None,
    )
    _out(f"Added MCP instance {instance.id} ({instance.name}) of catalog entry '{entry.name}' [{entry.transport}]")
    return 0


def _parse_env(pairs: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise McpCliError(f"--env {pair!r} is invalid; write --env NAME=VALUE")
        env[name] = value
    return env


def _cmd_bind(store: Any, args: argparse.Namespace) -> int:
    from studio.mcp.instances import bind
    from studio.secrets import get_connection

    connection = get_connection(store, args.connection)
    if args.env:
        instance = bind(store, args.instance, "env", args.env, connection.id)
    else:
        instance = bind(store, args.instance, "header", args.header, connection.id)
    target, name = ("env", args.env) if args.env else ("header", args.header)
    _out(f"Bound {target} {name} of MCP instance {instance.name} to connection {connection.name}")
    return 0


def _cmd_set(store: Any, args: argparse.Namespace) -> int:
    from studio.mcp.instances import Timeouts, get_instance, set_options

    current = get_instance(store, args.instance).timeouts
    call_s = current.call_s
    if args.no_call_timeout:
        call_s = None
    elif args.call_timeout is not None:
        call_s = args.call_timeout
    timeouts = Timeouts(
        connect_s=current.connect_s if args.connect_timeout is None else args.connect_timeout,
        call_s=call_s,
        progress_extends=current.progress_extends if args.progress_extends is None else args.progress_extends,
        max_call_s=current.max_call_s if args.max_call_time is None else args.max_call_time,
    )
    instance = set_options(store, args.instance, timeouts=timeouts, allow_sampling=args.allow_sampling)
    limits = instance.timeouts
    call_text = "none" if limits.call_s is None else f"{limits.call_s:g} s"
    max_text = "default" if limits.max_call_s is None else f"{limits.max_call_s:g} s"
    _out(
        f"MCP instance {instance.name}: connect timeout {limits.connect_s:g} s, call timeout {call_text}, "
        f"progress restarts it: {'yes' if limits.progress_extends else 'no'}, max call time {max_text}, "
        f"sampling allowed: {'yes' if instance.allow_sampling else 'no'}"
    )
    return 0


def _cmd_remove(store: Any, args: argparse.Namespace) -> int:
    from studio.mcp.instances import delete_instance, get_instance

    instance = get_instance(store, args.instance)
    delete_instance(store, instance.id, force=args.force)
    _out(f"Deleted MCP instance {instance.id} ({instance.name})")
    return 0


# -- import and export ----------------------------------------------------------------------------


def _cmd_import(store: Any, args: argparse.Namespace) -> int:
    from studio.mcp.mcp_servers_json import import_servers, parse_servers
    from studio.secrets import open_vault

    document = _read_json_file(args.file)
    servers = parse_servers(document, args.format)
    has_secret = any(
        value is not None for s in servers for value in [*s.secret_env.values(), *s.secret_headers.values()]
    )
    vault = open_vault(store.workspace_slug()) if has_secret else None
    report = import_servers(store, document, vault=vault, file_format=args.format)
    for instance in report.instances:
        _out(f"Imported {instance.name} [{instance.transport}] as instance {instance.id}")
    for name in report.connections:
        _out(f"Stored a secret as connection '{name}'")
    for entry in report.unbound:
        _err(f"needs a connection: {entry} (bind one with 'studio mcp bind')")
    for entry in report.skipped:
        _err(f"skipped {entry}")
    if not servers:
        _err(f"note: {args.file} lists no MCP servers; nothing was imported")
    return 0


def _read_json_file(path_text: str) -> dict[str, Any]:
    path = Path(path_text)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise McpCliError(f"cannot read {path}: {error.strerror}; check the path") from None
    except UnicodeDecodeError as error:
        raise McpCliError(
            f"{path} is not UTF-8 text (invalid byte at offset {error.start}); save it as UTF-8 JSON"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise McpCliError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}") from None
    except RecursionError:
        raise McpCliError(f"{path} is not an MCP client config: its JSON is nested too deeply") from None
    if not isinstance(document, dict):
        raise McpCliError(f"{path} must contain a JSON object with 'mcpServers' or 'servers'")
    return document


def _cmd_export(store: Any, args: argparse.Namespace) -> int:
    from studio.mcp.mcp_servers_json import export_servers

    result = export_servers(store, args.format)
    text = json.dumps(result.document, indent=2) + "\n"
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as error:
            raise McpCliError(f"cannot write {args.output}: {error.strerror}") from None
        _err(f"Wrote {args.output}")
    else:
        sys.stdout.write(text)
    for note in result.notes:
        _err(f"note: {note}")
    return 0


# -- live commands --------------------------------------------------------------------------------


async def _live_command(store: Any, args: argparse.Namespace) -> int:
    from studio.engine.executors.mcp_errors import McpError
    from studio.mcp.session import InstanceSession

    if args.mcp_command == "tools" and args.cached:
        return _print_cached_tools(store, args)
    arguments = _parse_arguments(args.args) if args.mcp_command == "call" else {}
    timeout = getattr(args, "timeout", None)
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise McpCliError(f"--timeout {timeout:g} is invalid; give a positive number of seconds")
    session = InstanceSession(store, args.instance, profile=args.profile)
    try:
        handshake = await session.start()
        if args.mcp_command == "start":
            _print_start(session, handshake, args.json)
            return 0
        if args.mcp_command == "tools":
            _print_tools([_tool_json(tool) for tool in session.tools], args.json)
            return 0
        result = await session.call_tool(args.tool, arguments, timeout_s=args.timeout)
        _out(json.dumps({"value": result.value, "is_error": result.is_error, "content": result.content}, indent=2))
        return EXIT_FAILED if result.is_error else 0
    except McpError as error:
        _err(f"error: {error}")
        return EXIT_FAILED
    finally:
        await session.stop()


def _parse_arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise McpCliError(
            f'--args is not valid JSON ({error.msg}); give an object such as \'{{"text": "hi"}}\''
        ) from None
    if not isinstance(value, dict):
        raise McpCliError(f'--args must be a JSON object, got {type(value).__name__}; for example \'{{"text": "hi"}}\'')
    return value


def _tool_json(tool: Any) -> dict[str, Any]:
    return {
        "name": tool.name,
        "description": tool.description,
        "input_schema": tool.input_schema,
        "output_schema": tool.output_schema,
    }


def _print_start(session: Any, handshake: Any, as_json: bool) -> None:
    tools = [_tool_json(tool) for tool in session.tools]
    if as_json:
        _out(json.dumps({"handshake": handshake.to_json(), "tools": tools}, indent=2))
        return
    _out(
        f"Started {session.instance.name}: server {handshake.server_name} {handshake.server_version}, "
        f"protocol {handshake.protocol_version}"
    )
    _out(f"Capabilities: {', '.join(sorted(handshake.capabilities)) or 'none'}")
    _print_tools(tools, False)


def _print_tools(tools: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        _out(json.dumps(tools, indent=2))
        return
    _out(f"Tools ({len(tools)}):")
    for tool in tools:
        summary = (tool.get("description") or "").strip().splitlines()
        properties = tool.get("input_schema", {}).get("properties") or {}
        _out(f"  {tool['name']}({', '.join(properties)})  {summary[0] if summary else ''}")


def _print_cached_tools(store: Any, args: argparse.Namespace) -> int:
    from studio.mcp.instances import get_instance
    from studio.mcp.tool_cache import cached_tools

    instance = get_instance(store, args.instance)
    cached = cached_tools(store, instance.id)
    if cached is None:
        raise McpCliError(f"MCP instance {instance.name!r} was never started; run 'studio mcp start {instance.name}'")
    _print_tools(list(cached.tools), args.json)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the mcp commands on their own: ``python -m studio.cli_mcp [--db DB] mcp ...``."""
    parser = argparse.ArgumentParser(prog="studio")
    parser.add_argument("--db", help="path of the SQLite database")
    subparsers = parser.add_subparsers(dest="command")
    add_commands(subparsers)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = handle(args)
    if result is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return result


if __name__ == "__main__":
    sys.exit(main())
