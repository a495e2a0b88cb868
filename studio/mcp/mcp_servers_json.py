"""Import and export of the MCP server config files of Claude Desktop, Cursor and VS Code.

Claude Desktop and Cursor write ``{"mcpServers": {name: {...}}}``: stdio servers with ``command``,
``args`` and ``env``; Cursor also takes remote servers with ``url`` and ``headers``. VS Code writes
``{"servers": {name: {"type": "stdio" | "http" | "sse", ...}}, "inputs": [...]}`` and refers to
secrets as ``${input:id}``.

On import, env values and headers that look like secrets go to the vault as connections, and the
instance gets a binding to each; placeholders such as ``${input:id}`` or ``${env:NAME}`` become
bindings still waiting for a connection. Export writes placeholders in their place, never a secret.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import JsonValue

from studio.mcp.catalog import STUDIO_TOOLS_COMMAND, CatalogEntry, add_entry, get_entry, list_entries, plain_secret
from studio.mcp.errors import McpConfigError
from studio.mcp.instances import Binding, McpInstance, Profile, check_profile, create_instance, list_instances
from studio.mcp.secret_values import is_secret_env, is_secret_header, placeholder_name
from studio.secrets import Connection, SecretVault, create_connection, delete_connection, list_connections
from studio.store import Store

logger = logging.getLogger(__name__)

FORMATS = ("claude", "cursor", "vscode")
"""Client formats: Claude Desktop, Cursor and VS Code."""
_ID_CHARS = re.compile(r"[^a-z0-9]+")
_EMBEDDED_PLACEHOLDER = re.compile(r"\$\{(input|env):[^}]*\}")


@dataclass
class ParsedServer:
    """One server of a config file, with plain values and secret values kept apart."""

    name: str
    transport: str
    command: str | None = None
    args: list[str] = field(default_factory=list)
    cwd: str | None = None
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, str | None] = field(default_factory=dict)
    """Secret env variables: the literal secret, or None for a placeholder that needs a connection."""
    secret_headers: dict[str, str | None] = field(default_factory=dict)


@dataclass
class ImportReport:
    """What an import created and what still needs the user."""

    instances: list[McpInstance] = field(default_factory=list)
    connections: list[str] = field(default_factory=list)
    """Names of the connections created for secret values."""
    unbound: list[str] = field(default_factory=list)
    """'instance: env NAME' or 'instance: header NAME' entries that need a connection bound."""
    skipped: list[str] = field(default_factory=list)


@dataclass
class ExportResult:
    document: dict[str, JsonValue]
    notes: list[str] = field(default_factory=list)


# -- parsing --------------------------------------------------------------------------------------


def detect_format(document: Mapping[str, Any]) -> str:
    """Return 'vscode' for a top-level ``servers`` object (unless it is empty and ``mcpServers`` is
    present), 'cursor' for ``mcpServers`` with a remote server, else 'claude'.

    Raises:
        McpConfigError: neither key is present.
    """
    servers = document.get("mcpServers")
    # An empty "servers" object next to a filled "mcpServers" one is not a VS Code file.
    if isinstance(document.get("servers"), dict) and (document["servers"] or not isinstance(servers, dict)):
        return "vscode"
    if isinstance(servers, dict):
        remote = any(isinstance(server, dict) and "url" in server for server in servers.values())
        return "cursor" if remote else "claude"
    raise McpConfigError(
        "the file has no 'mcpServers' object (Claude Desktop, Cursor) and no 'servers' object (VS Code); "
        "check that it is an MCP client config"
    )


def parse_servers(document: Mapping[str, Any], file_format: str | None = None) -> list[ParsedServer]:
    """Parse the servers of a config file in the given or detected format.

    Raises:
        McpConfigError: an unknown format, or a server with a missing or ill-typed field (named).
    """
    chosen = file_format or detect_format(document)
    if chosen not in FORMATS:
        raise McpConfigError(f"unknown config format {chosen!r}; use one of {', '.join(FORMATS)}")
    key = "servers" if chosen == "vscode" else "mcpServers"
    servers = document.get(key)
    if not isinstance(servers, dict):
        raise McpConfigError(f"the {chosen} config needs a '{key}' object mapping server names to settings")
    return [_parse_server(str(name), value) for name, value in servers.items()]


def _parse_server(name: str, value: Any) -> ParsedServer:
    if not isinstance(value, dict):
        raise McpConfigError(f"server {name!r} must be a JSON object, got {type(value).__name__}")
    declared = value.get("type")
    url = _optional_text(value, "url", name)
    command = _optional_text(value, "command", name)
    if declared not in (None, "stdio", "http", "sse", "streamable-http", "streamableHttp"):
        raise McpConfigError(f"server {name!r} has unknown type {declared!r}; use stdio, http or sse")
    if command is None and url is None:
        raise McpConfigError(f"server {name!r} has neither 'command' nor 'url'; give one of them")
    if url is not None:
        transport = "sse" if declared == "sse" or (declared is None and url.rstrip("/").endswith("/sse")) else "http"
        parsed = ParsedServer(name=name, transport=transport, url=url)
        for header, text in _text_map(value, "headers", name).items():
            _sort_value(parsed.headers, parsed.secret_headers, header, text, is_secret_header(header, text))
        return parsed
    parsed = ParsedServer(
        name=name,
        transport="stdio",
        command=command,
        args=_text_list(value, "args", name),
        cwd=_optional_text(value, "cwd", name),
    )
    for variable, text in _text_map(value, "env", name).items():
        _sort_value(parsed.env, parsed.secret_env, variable, text, is_secret_env(variable, text))
    return parsed


def _sort_value(plain: dict[str, str], secret: dict[str, str | None], key: str, text: str, looks_secret: bool) -> None:
    stripped = text.strip()
    # "Bearer ${input:token}" is a placeholder too: the connection supplies the whole header value.
    referenced = placeholder_name(stripped.removeprefix("Bearer ").strip())
    # Clients fill a placeholder inside a value ("postgres://u:${input:pw}@h") at launch; the studio
    # does not, so the whole value becomes a binding that a connection supplies.
    embedded = _EMBEDDED_PLACEHOLDER.search(stripped) is not None
    if referenced is not None or embedded or (looks_secret and not stripped):
        secret[key] = None
    elif looks_secret:
        secret[key] = text
    else:
        plain[key] = text


def _optional_text(value: Mapping[str, Any], key: str, name: str) -> str | None:
    item = value.get(key)
    if item is None:
        return None
    if not isinstance(item, str) or not item.strip():
        raise McpConfigError(f"'{key}' of server {name!r} must be a non-empty string")
    return item


def _text_list(value: Mapping[str, Any], key: str, name: str) -> list[str]:
    items = value.get(key) or []
    if not isinstance(items, list) or not all(isinstance(item, str | int | float) for item in items):
        raise McpConfigError(f"'{key}' of server {name!r} must be a list of strings")
    return [str(item) for item in items]


def _text_map(value: Mapping[str, Any], key: str, name: str) -> dict[str, str]:
    items = value.get(key) or {}
    if not isinstance(items, dict) or not all(isinstance(item, str | int | float | bool) for item in items.values()):
        raise McpConfigError(f"'{key}' of server {name!r} must be an object of string values")
    return {str(name_key): _config_text(item) for name_key, item in items.items()}


def _config_text(item: str | int | float | bool) -> str:
    """Return a config value as the text a process sees: booleans as ``true``/``false`` like JSON."""
    if isinstance(item, bool):
        return "true" if item else "false"
    return str(item)


# -- import ---------------------------------------------------------------------------------------


def import_servers(
    store: Store,
    document: Mapping[str, Any],
    *,
    vault: SecretVault | None = None,
    file_format: str | None = None,
) -> ImportReport:
    """Create a catalog entry and an instance for each server of a config file.

    A server whose name an instance already has, or whose arguments or URL carry a literal secret
    (which no binding can hold), is skipped and listed in the report.

    Raises:
        McpConfigError: the file is invalid, or it contains secret values and no vault was given.
        SecretsError: the vault refused a secret.
    """
    servers = parse_servers(document, file_format)
    needs_vault = [
        s.name for s in servers if any(v is not None for v in [*s.secret_env.values(), *s.secret_headers.values()])
    ]
    if needs_vault and vault is None:
        raise McpConfigError(
            f"servers {', '.join(needs_vault)} contain secret values, which are stored in the secrets vault; "
            "open the vault (set up a keychain or STUDIO_SECRETS_PASSPHRASE) and import again"
        )
    report = ImportReport()
    existing = {instance.name for instance in list_instances(store)}
    for server in servers:
        if server.name in existing:
            report.skipped.append(f"{server.name}: an instance with this name exists already")
            continue
        problem = plain_secret(server.transport, server.command, server.args, server.url)
        if problem is not None:
            report.skipped.append(f"{server.name}: {problem} and import again")
            continue
        try:
            check_profile(Profile("default", env=server.env, headers=server.headers), server.name)
            report.instances.append(_import_one(store, server, vault, report))
        except McpConfigError as error:
            # Another process may have created an instance of this name since the check above.
            report.skipped.append(f"{server.name}: {error}")
    logger.info(
        "Imported %d MCP servers (%d skipped, %d connections created)",
        len(report.instances),
        len(report.skipped),
        len(report.connections),
    )
    return report


def _import_one(store: Store, server: ParsedServer, vault: SecretVault | None, report: ImportReport) -> McpInstance:
    """Create the instance of one server; on failure, delete the connections made for it and re-raise."""
    entry = _entry_for(store, server)
    bindings: list[Binding] = []
    created: list[Connection] = []
    unbound: list[str] = []
    try:
        for target, values in (("env", server.secret_env), ("header", server.secret_headers)):
            for key, secret in values.items():
                connection_id = None
                if secret is not None:
                    assert vault is not None
                    created.append(_secret_connection(store, vault, server.name, target, key, secret))
                    connection_id = created[-1].id
                else:
                    unbound.append(f"{server.name}: {target} {key}")
                bindings.append(Binding(target, key, connection_id))  # type: ignore[arg-type]
        profile = Profile("default", env=server.env, headers=server.headers)
        instance = create_instance(store, entry, name=server.name, profiles=[profile], bindings=bindings)
    except McpConfigError:
        for connection in created:
            assert vault is not None
            delete_connection(store, vault, connection.id, force=True)
        raise
    report.connections.extend(connection.name for connection in created)
    report.unbound.extend(unbound)
    return instance


def _entry_for(store: Store, server: ParsedServer) -> CatalogEntry:
    if server.command == STUDIO_TOOLS_COMMAND:
        return get_entry(store, f"builtin:{STUDIO_TOOLS_COMMAND}")
    for entry in list_entries(store):
        same = (entry.transport, entry.command, list(entry.args), entry.cwd, entry.url) == (
            server.transport,
            server.command,
            server.args,
            server.cwd,
            server.url,
        )
        if same and not entry.builtin:
            return entry
    name = _unique(server.name, {entry.name for entry in list_entries(store)})
    return add_entry(
        store,
        name,
        server.transport,
        command=server.command,
        args=server.args,
        cwd=server.cwd,
        url=server.url,
        description="Imported from an MCP client config",
    )


def _secret_connection(store: Store, vault: SecretVault, server: str, target: str, key: str, secret: str) -> Connection:
    name = _unique(f"{server} {key}", {connection.name for connection in list_connections(store)})
    stripped = secret.strip()
    if target == "header" and key.lower() == "authorization" and stripped.startswith("Bearer "):
        connection = create_connection(store, vault, name, "bearer", secret=stripped.removeprefix("Bearer ").strip())
    elif target == "header":
        connection = create_connection(store, vault, name, "api_key", secret=stripped, settings={"header": key})
    else:
        connection = create_connection(store, vault, name, "api_key", secret=stripped)
    return connection


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate = f"{name} ({number})"
        number += 1
    return candidate


# -- export ---------------------------------------------------------------------------------------


def export_servers(store: Store, file_format: str, *, names: Sequence[str] | None = None) -> ExportResult:
    """Write the project's instances (their default profiles) as a config file of the given client.

    Bound values become placeholders: ``${env:NAME}`` for Cursor, ``${input:id}`` with an ``inputs``
    entry for VS Code, and an empty string for Claude Desktop, which has no placeholders. Claude
    Desktop's file takes no remote servers, so those are left out and named in the notes.

    Raises:
        McpConfigError: an unknown format or instance name.
    """
    if file_format not in FORMATS:
        raise McpConfigError(f"unknown config format {file_format!r}; use one of {', '.join(FORMATS)}")
    instances = list_instances(store)
    if names:
        known = {instance.name for instance in instances}
        missing = [name for name in names if name not in known]
        if missing:
            raise McpConfigError(
                f"MCP instances {', '.join(missing)} were not found; list them with 'studio mcp instances'"
            )
        instances = [instance for instance in instances if instance.name in names]
    result = ExportResult(document={})
    servers: dict[str, JsonValue] = {}
    inputs: list[JsonValue] = []
    used_names: set[str] = set()
    for instance in instances:
        if file_format == "claude" and instance.transport != "stdio":
            result.notes.append(f"{instance.name}: left out, because Claude Desktop's file takes only stdio servers")
            continue
        servers[instance.name] = _export_one(instance, file_format, inputs, result.notes, used_names)
    if file_format == "vscode":
        result.document = {"inputs": inputs, "servers": servers}
    else:
        result.document = {"mcpServers": servers}
    return result


def _export_one(
    instance: McpInstance, file_format: str, inputs: list[JsonValue], notes: list[str], used_names: set[str]
) -> dict[str, JsonValue]:
    profile = instance.profile()
    server: dict[str, JsonValue] = {}
    if instance.transport == "stdio":
        if file_format == "vscode":
            server["type"] = "stdio"
        server["command"] = instance.command or ""
        server["args"] = [*instance.args, *profile.args]
        if instance.cwd and file_format != "claude":
            server["cwd"] = instance.cwd
        env: dict[str, JsonValue] = dict(profile.env)
        for binding in instance.bindings:
            if binding.target == "env":
                env[binding.name] = _placeholder(instance, binding, file_format, inputs, notes, used_names)
        if env:
            server["env"] = env
        return server
    if file_format == "vscode" or instance.transport == "sse":
        server["type"] = instance.transport
    server["url"] = instance.url or ""
    headers: dict[str, JsonValue] = dict(profile.headers)
    for binding in instance.bindings:
        if binding.target == "header":
            headers[binding.name] = _placeholder(instance, binding, file_format, inputs, notes, used_names)
    if headers:
        server["headers"] = headers
    return server


def _placeholder(
    instance: McpInstance,
    binding: Binding,
    file_format: str,
    inputs: list[JsonValue],
    notes: list[str],
    used_names: set[str],
) -> str:
    """Return the placeholder of a bound value; ``used_names`` keeps generated names unique within one file.

    Two servers must never share a generated name, or the client would give one server's secret to the other.
    """
    if file_format == "cursor":
        if binding.target == "env":
            return f"${{env:{binding.name}}}"
        return f"${{env:{_unique_name(_env_name(instance, binding), used_names, '_')}}}"
    if file_format == "vscode":
        input_id = _ID_CHARS.sub("-", f"{instance.name}-{binding.name}".lower()).strip("-")
        input_id = _unique_name(input_id, used_names, "-")
        inputs.append(
            {
                "type": "promptString",
                "id": input_id,
                "description": f"{binding.name} for MCP server {instance.name}",
                "password": True,
            }
        )
        return f"${{input:{input_id}}}"
    notes.append(
        f"{instance.name}: set {binding.target} {binding.name} by hand; Claude Desktop's file has no placeholders"
    )
    return ""


def _unique_name(base: str, used_names: set[str], separator: str) -> str:
    candidate, number = base, 2
    while candidate in used_names:
        candidate = f"{base}{separator}{number}"
        number += 1
    used_names.add(candidate)
    return candidate


def _env_name(instance: McpInstance, binding: Binding) -> str:
    return _ID_CHARS.sub("_", f"{instance.name}_{binding.name}".lower()).strip("_").upper()
