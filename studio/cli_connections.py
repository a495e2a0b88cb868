"""Command-line commands for connections: list, add, OAuth sign-in, test, usage, default, rotate and delete.

``add_commands`` registers them under ``studio connections``. When ``studio/cli.py`` already defines
that command, only the commands it lacks are added (``add-oauth``, ``login``, ``test``, ``usage``,
``default``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
_ID_HELP = "connection id or name"
_SECRET_HELP = (
    "read the secret from this environment variable; without it the secret is read from a prompt, "
    "or from the first line of standard input when that is not a terminal"
)


_OWNER = __name__
"""Parser default that marks the commands this module registered, so ``handle`` leaves the others alone."""


class _CommandError(Exception):
    """An error printed as one line on stderr, with exit code 2."""


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``connections`` and its commands on the top-level subparsers of ``studio``."""
    existing = subparsers.choices.get("connections")
    if existing is not None:
        commands = _subcommands_of(existing)
    else:
        parser = subparsers.add_parser(
            "connections", help="list, add, sign in, test, rotate or delete connections and secrets"
        )
        parser.set_defaults(connections_owner=_OWNER)
        commands = parser.add_subparsers(dest="connections_command")
        _add_base_commands(commands)
    _add_own_commands(commands)


def _subcommands_of(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the existing 'connections' command has no subcommands to extend")


def _add_base_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = commands.add_parser("list", help="list connections with kind, status and expiry (never secrets)")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    add = commands.add_parser("add", help="create a connection and store its secret in the vault")
    add.add_argument("name")
    add.add_argument("--kind", required=True, choices=["api_key", "bearer", "basic", "none"])
    add.add_argument("--provider", help="LLM provider the connection is for: openai, anthropic or ollama")
    add.add_argument("--base-url", help="root URL of the API, for example https://api.openai.com/v1")
    add.add_argument("--username", help="user name of a basic connection")
    add.add_argument("--header", help="header that carries an api_key (default: Authorization: Bearer)")
    add.add_argument("--test-url", help="URL that 'connections test' requests with the secret")
    add.add_argument("--secret-env", metavar="VARIABLE", help=_SECRET_HELP)
    rotate = commands.add_parser("rotate", help="replace a connection's secret")
    rotate.add_argument("connection", help=_ID_HELP)
    rotate.add_argument("--secret-env", metavar="VARIABLE", help=_SECRET_HELP)
    delete = commands.add_parser("delete", help="delete a connection and its secret")
    delete.add_argument("connection", help=_ID_HELP)
    delete.add_argument("--force", action="store_true", help="delete even when workflows or MCP instances use it")


def _add_own_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    oauth = commands.add_parser("add-oauth", help="create an OAuth 2 connection; sign in with 'connections login'")
    oauth.add_argument("name")
    oauth.add_argument("--mcp-server-url", help="remote MCP server: endpoints and client are discovered at sign-in")
    oauth.add_argument("--authorization-endpoint", help="authorization endpoint URL of a registered client")
    oauth.add_argument("--token-endpoint", help="token endpoint URL of a registered client")
    oauth.add_argument("--client-id", help="client id registered at the authorization server")
    oauth.add_argument("--client-secret-env", metavar="VARIABLE", help="environment variable with a client secret")
    oauth.add_argument("--scope", action="append", default=[], help="scope to request (repeatable)")
    oauth.add_argument("--provider", help="LLM provider the connection is for, if any")
    oauth.add_argument("--base-url", help="root URL of the API the tokens are for")
    login = commands.add_parser("login", help="sign an OAuth connection in: prints the URL, waits for the redirect")
    login.add_argument("connection", help=_ID_HELP)
    login.add_argument("--no-browser", action="store_true", help="only print the URL; open it yourself")
    login.add_argument(
        "--timeout", type=float, default=300.0, metavar="SECONDS", help="how long to wait for the sign-in (default 300)"
    )
    test = commands.add_parser(
        "test", help="check with one real request that a connection's secret works (exit status 1 when it does not)"
    )
    test.add_argument("connection", help=_ID_HELP)
    test.add_argument("--json", action="store_true", help="print the result as JSON")
    usage = commands.add_parser("usage", help="list the workflows and MCP instances that use a connection")
    usage.add_argument("connection", help=_ID_HELP)
    usage.add_argument("--json", action="store_true", help="print the list as JSON")
    default = commands.add_parser(
        "default",
        help="show or set the default LLM connection, which llm_call steps without a connection and MCP sampling use",
    )
    default.add_argument("connection", nargs="?", help=f"{_ID_HELP}; without it, show the current default")
    default.add_argument("--model", help="model for requests that name none (the connection's default_model)")
    default.add_argument("--clear", action="store_true", help="unmark the default connection")
    for command in (oauth, login, test, usage, default):
        command.set_defaults(connections_owner=_OWNER)


def handle(args: argparse.Namespace) -> int | None:
    """Run a ``connections`` command registered here; None when the command belongs to someone else."""
    if getattr(args, "command", None) != "connections":
        return None
    if getattr(args, "connections_owner", None) != _OWNER:
        return None
    command = getattr(args, "connections_command", None)
    from studio import secrets

    store = _open_store(args)
    try:
        return _dispatch(store, args, command or "list")
    except (_CommandError, secrets.SecretsError) as error:
        _echo(f"error: {error}", error=True)
        return EXIT_USAGE
    finally:
        store.close()


def _dispatch(store: Any, args: argparse.Namespace, command: str) -> int:
    if command == "list":
        return _list(store, args.json)
    if command == "usage":
        return _usage(store, args.connection, args.json)
    if command == "default":
        return _default(store, args)
    vault = _open_vault(store)
    handlers = {
        "add": _add,
        "add-oauth": _add_oauth,
        "login": _login,
        "test": _test,
        "rotate": _rotate,
        "delete": _delete,
    }
    return handlers[command](store, vault, args)


# -- commands -------------------------------------------------------------------------------------


def _list(store: Any, as_json: bool) -> int:
    from studio.secrets.status import connection_rows

    rows = connection_rows(store)
    if as_json:
        _echo(json.dumps([row.as_json() for row in rows], indent=2))
        return EXIT_OK
    if not rows:
        _echo("No connections. Add one with 'studio connections add NAME --kind api_key --base-url URL'.")
    for row in rows:
        _echo(f"{row.id}  {row.name}  {row.kind}  {row.provider or '-'}  {row.status}  {row.expiry_text or '-'}")
    return EXIT_OK


def _add(store: Any, vault: Any, args: argparse.Namespace) -> int:
    from studio import secrets

    settings: dict[str, Any] = {}
    for key, value in (("username", args.username), ("header", args.header), ("test_url", args.test_url)):
        if value:
            settings[key] = value
    secret = None if args.kind == "none" else _read_secret(args.secret_env, f"Secret for {args.name}: ")
    connection = secrets.create_connection(
        store, vault, args.name, args.kind, args.provider, args.base_url, secret, settings
    )
    _echo(f"Created connection {connection.id} ({connection.name}); secret in {vault.backend_description()}")
    return EXIT_OK


def _add_oauth(store: Any, vault: Any, args: argparse.Namespace) -> int:
    from studio.secrets.oauth import create_oauth_connection

    client_secret = _read_variable(args.client_secret_env) if args.client_secret_env else None
    connection = create_oauth_connection(
        store,
        vault,
        args.name,
        mcp_server_url=args.mcp_server_url,
        authorization_endpoint=args.authorization_endpoint,
        token_endpoint=args.token_endpoint,
        client_id=args.client_id,
        client_secret=client_secret,
        scopes=args.scope,
        provider=args.provider,
        base_url=args.base_url,
    )
    _echo(f"Created OAuth connection {connection.id} ({connection.name}); sign in with:")
    _echo(f"  studio connections login {_quoted(connection.name)}")
    return EXIT_OK


def _login(store: Any, vault: Any, args: argparse.Namespace) -> int:
    from studio.secrets.oauth import sign_in

    def show(url: str) -> None:
        _echo("Open this URL to sign in (waiting for the browser to return):")
        _echo(url)

    def open_browser(url: str) -> None:
        if not args.no_browser:
            webbrowser.open(url)

    state = asyncio.run(sign_in(store, vault, args.connection, opener=open_browser, on_url=show, timeout=args.timeout))
    expiry = _format_time(state.expires_at) if state.expires_at else "no expiry given"
    _echo(f"Signed in; token valid until {expiry}, scopes {' '.join(state.scopes) or '(none)'}")
    return EXIT_OK


def _test(store: Any, vault: Any, args: argparse.Namespace) -> int:
    from studio.secrets.checks import check_connection

    result = asyncio.run(check_connection(store, vault, args.connection))
    if args.json:
        _echo(json.dumps({"verdict": result.verdict, "reason": result.reason, "status_code": result.status_code}))
    else:
        _echo(f"{result.verdict}: {result.reason}")
    return EXIT_OK if result.ok else EXIT_FAILED


def _usage(store: Any, id_or_name: str, as_json: bool) -> int:
    from studio import secrets
    from studio.secrets.usage import where_used

    connection = secrets.get_connection(store, id_or_name)
    usages = where_used(store, connection.id)
    if as_json:
        rows = [
            {"kind": u.kind, "owner_id": u.owner_id, "owner_name": u.owner_name, "detail": u.detail,
             "step_ids": list(u.step_ids)}
            for u in usages
        ]
        _echo(json.dumps(rows, indent=2))
        return EXIT_OK
    if not usages:
        _echo(f"No workflow or MCP instance uses connection {connection.name}.")
    for usage in usages:
        _echo(usage.describe())
    return EXIT_OK


def _default(store: Any, args: argparse.Namespace) -> int:
    from studio import secrets
    from studio.engine.executors.llm_default import DEFAULT_MODEL_SETTING, default_connection, set_default_connection
    from studio.engine.executors.llm_errors import LlmConfigError

    try:
        if args.clear:
            if args.connection or args.model:
                raise _CommandError("--clear takes no connection and no --model")
            set_default_connection(store, None)
            _echo("No connection is the default LLM connection now")
            return EXIT_OK
        if args.connection:
            connection = secrets.get_connection(store, args.connection)
            set_default_connection(store, connection.id, default_model=args.model)
        elif args.model:
            raise _CommandError("--model needs the connection to mark as the default")
        row = default_connection(store)
    except LlmConfigError as error:
        raise _CommandError(error.message) from None
    if row is None:
        _echo("No default LLM connection; mark one with 'studio connections default NAME --model MODEL'")
        return EXIT_OK
    model = (row.get("settings") or {}).get(DEFAULT_MODEL_SETTING) or "(none: steps must name a model)"
    _echo(f"Default LLM connection: {row['name']} ({row['id']}), provider {row.get('provider')}, model {model}")
    return EXIT_OK


def _rotate(store: Any, vault: Any, args: argparse.Namespace) -> int:
    from studio import secrets

    connection = secrets.get_connection(store, args.connection)
    secret = _read_secret(args.secret_env, f"New secret for {connection.name}: ")
    secrets.rotate_secret(store, vault, connection.id, secret)
    _echo(f"Rotated the secret of connection {connection.id} ({connection.name})")
    return EXIT_OK


def _delete(store: Any, vault: Any, args: argparse.Namespace) -> int:
    from studio import secrets
    from studio.secrets.usage import where_used

    connection = secrets.get_connection(store, args.connection)
    usages = where_used(store, connection.id)
    secrets.delete_connection(store, vault, connection.id, force=args.force)
    for usage in usages:
        _echo(f"warning: {usage.describe()} still uses the deleted connection", error=True)
    _echo(f"Deleted connection {connection.id} ({connection.name}) and its secret")
    return EXIT_OK


# -- helpers --------------------------------------------------------------------------------------


def _open_store(args: argparse.Namespace) -> Any:
    from sqlalchemy.exc import DatabaseError

    from studio.store import default_database_path, open_store

    db = getattr(args, "db", None) or os.environ.get("STUDIO_DB")
    path = Path(db) if db else default_database_path()
    try:
        return open_store(path)
    except (OSError, DatabaseError) as error:
        _echo(f"error: could not open the database {path}: {error}", error=True)
        raise SystemExit(EXIT_USAGE) from None


def _open_vault(store: Any) -> Any:
    """Open the workspace's vault, asking for the encrypted file's passphrase on a terminal when needed."""
    from studio import secrets

    passphrase = None
    no_keychain = os.environ.get(secrets.BACKEND_VARIABLE) == "file" or secrets.os_keyring() is None
    if no_keychain and not os.environ.get(secrets.PASSPHRASE_VARIABLE) and sys.stdin.isatty():
        path = secrets.default_secrets_file()
        passphrase = getpass.getpass(f"Passphrase for the encrypted secrets file {path}: ") or None
    return secrets.open_vault(store.workspace_slug(), passphrase=passphrase)


def _read_variable(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise _CommandError(f"environment variable {variable} is not set or empty; set it to the secret")
    return value


def _read_secret(variable: str | None, prompt: str) -> str:
    # Secrets are never command-line arguments, because other users can read those in the process list.
    if variable:
        return _read_variable(variable)
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\r\n")


def _echo(text: str, *, error: bool = False) -> None:
    """Write one line of command output to stdout, or to stderr for errors and warnings."""
    stream = sys.stderr if error else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def _quoted(name: str) -> str:
    return f"'{name}'" if any(ch.isspace() for ch in name) else name


def _format_time(value: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the connections commands on their own: ``python -m studio.cli_connections --db DB connections ...``."""
    parser = argparse.ArgumentParser(prog="studio", description="Workflow Studio connections")
    parser.add_argument("--db", help="path of the SQLite database")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = handle(args)
    return EXIT_USAGE if result is None else result


if __name__ == "__main__":
    sys.exit(main())
