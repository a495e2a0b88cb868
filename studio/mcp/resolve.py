"""Build the engine's `McpServerSpec` for an instance, reading bound secrets from the vault at that moment."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from studio.mcp.catalog import STUDIO_TOOLS_COMMAND
from studio.mcp.errors import McpConfigError
from studio.mcp.instances import Binding, McpInstance, get_instance
from studio.secrets import Connection, SecretVault, open_vault, resolve_headers
from studio.secrets.oauth import OAUTH_KIND, access_token_sync, http_auth_for_connection
from studio.store import Store

if TYPE_CHECKING:
    import httpx2

    from studio.engine.executors.mcp_http_auth import HttpAuthFactory
    from studio.engine.executors.mcp_model import McpServerSpec

logger = logging.getLogger(__name__)

PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")
"""Variables of the studio's own environment that every stdio server inherits; nothing else leaks to it."""


def spec_for_instance(
    store: Store, instance_id: str, *, profile: str | None = None, vault: SecretVault | None = None
) -> McpServerSpec:
    """Return the spec that starts or reaches an instance (by id or name) with the given or default profile.

    The vault is opened (when not given) only if the instance has bindings. The secrets go into the
    spec's env or headers, which its repr and key leave out; this function logs no value. An
    ``oauth2`` connection bound to the ``Authorization`` header of a remote instance is not read here:
    the spec names it in ``auth_connection_id``, and the session renews its token while it runs. The
    spec's ``credential_source`` names the connection that authenticates the server, so an auth
    failure can say which one to fix.

    NOTE: this call may block for seconds when the vault is the encrypted file and not yet unlocked.
    From an event loop, call it through ``asyncio.to_thread``.

    Raises:
        McpNotFoundError: no such instance.
        McpConfigError: an unknown profile, a binding with no connection, a connection that was
            deleted or has no secret, or launch fields the engine rejects (such as a URL that is not HTTP).
        SecretsError: no usable vault, or the bound secret is missing or unreadable.
    """
    instance = get_instance(store, instance_id)
    chosen = instance.profile(profile)
    secrets = _bound_values(store, instance, vault)
    args = (*instance.args, *chosen.args)
    if instance.transport == "stdio":
        command = instance.command or ""
        if command == STUDIO_TOOLS_COMMAND:
            command, args = sys.executable, ("-m", "studio.toolserver", *args)
        env = {key: value for key, value in os.environ.items() if key in PASSED_ENV}
        env.update(chosen.env)
        env.update(secrets.env)
        return _build(instance, "stdio", command=command, args=args, env=env, cwd=instance.cwd, bound=secrets)
    if chosen.args or chosen.env:
        logger.debug(
            "profile %s of remote MCP instance %s sets args or env, which it ignores", chosen.name, instance.id
        )
    headers = {**chosen.headers, **secrets.header} or None
    transport = "sse" if instance.transport == "sse" else "http"
    return _build(instance, transport, url=instance.url, headers=headers, bound=secrets)


def connection_auth_factory(
    store: Store, vault: SecretVault | None = None, *, clock: Callable[[], float] = time.time
) -> HttpAuthFactory:
    """Return the function that builds a connection's httpx2 auth for MCP sessions on ``store``.

    The vault (the workspace's, when not given) is opened on first use, in a thread, because the
    encrypted file can take seconds to unlock. ``clock`` decides when an OAuth token is due.
    """
    opened: list[SecretVault] = [vault] if vault is not None else []

    async def auth_for(connection_id: str) -> httpx2.Auth:
        if not opened:
            opened.append(await asyncio.to_thread(open_vault, store.workspace_slug()))
        return await asyncio.to_thread(http_auth_for_connection, store, opened[0], connection_id, clock=clock)

    return auth_for


@dataclass
class _BoundValues:
    """The values of an instance's bindings, and which connection authenticates the server."""

    env: dict[str, str] = field(default_factory=dict)
    header: dict[str, str] = field(default_factory=dict)
    auth_connection_id: str | None = None
    credential_source: str = ""


def _build(
    instance: McpInstance,
    transport: str,
    *,
    command: str | None = None,
    args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    url: str | None = None,
    headers: Mapping[str, str] | None = None,
    bound: _BoundValues,
) -> McpServerSpec:
    # Imported here because the engine package imports this module (its executors resolve instances).
    from studio.engine.executors.mcp_model import McpServerSpec

    try:
        return McpServerSpec(
            transport=transport,  # type: ignore[arg-type]  # McpServerSpec checks the value itself
            command=command,
            args=args,
            env=env,
            cwd=cwd,
            url=url,
            headers=headers,
            name=instance.name,
            connect_timeout_s=instance.timeouts.connect_s,
            call_timeout_s=instance.timeouts.call_s,
            reset_timeout_on_progress=instance.timeouts.progress_extends,
            max_call_timeout_s=instance.timeouts.max_call_s,
            allow_sampling=instance.allow_sampling,
            credential_source=bound.credential_source,
            auth_connection_id=bound.auth_connection_id,
            secret_values=_secret_values(bound),
        )
    except ValueError as error:
        raise McpConfigError(f"MCP instance {instance.name!r} cannot be used: {error}") from None


def _secret_values(bound: _BoundValues) -> tuple[str, ...]:
    """Return the bound values to hide in server output, with the credential after a Bearer or Basic scheme.

    The longest come first, so a value that contains another is hidden whole.
    """
    values: set[str] = set()
    for value in (*bound.env.values(), *bound.header.values()):
        values.add(value)
        scheme, _, credential = value.partition(" ")
        if scheme.lower() in ("bearer", "basic") and credential.strip():
            values.add(credential.strip())
    return tuple(sorted(values, key=len, reverse=True))


def _bound_values(store: Store, instance: McpInstance, vault: SecretVault | None) -> _BoundValues:
    """Return the secret of each binding's connection, or the connection that authenticates requests itself.

    The credential source is the connection bound to the ``Authorization`` header when there is
    one, else the first binding's connection.
    """
    values = _BoundValues()
    relevant = [b for b in instance.bindings if (b.target == "env") == (instance.transport == "stdio")]
    if not relevant:
        return values
    for binding in relevant:
        if binding.connection_id is None:
            raise McpConfigError(
                f"{_describe(binding)} of MCP instance {instance.name!r} needs a connection; bind one with "
                f"'studio mcp bind {instance.name} --{binding.target} {binding.name} --connection NAME'"
            )
    active_vault = vault
    for binding in sorted(relevant, key=lambda b: b.name.lower() != "authorization"):
        connection = _connection(store, instance, binding)
        values.credential_source = values.credential_source or connection.name
        if _authenticates_itself(connection, binding):
            values.auth_connection_id = connection.id
            logger.debug("%s authenticates the requests of MCP instance %s", connection.label, instance.id)
            continue
        if active_vault is None:
            active_vault = open_vault(store.workspace_slug())
        target = values.env if binding.target == "env" else values.header
        target[binding.name] = _secret_for(store, connection, binding, active_vault, instance)
    logger.debug("resolved %d bindings of MCP instance %s", len(relevant), instance.id)
    return values


def _authenticates_itself(connection: Connection, binding: Binding) -> bool:
    """Whether the session's HTTP auth applies the connection instead of a fixed header value.

    That is the case for an ``oauth2`` connection bound to ``Authorization``: its access token
    expires, and the auth renews it during a session.
    """
    return connection.kind == OAUTH_KIND and binding.target == "header" and binding.name.lower() == "authorization"


def _describe(binding: Binding) -> str:
    kind = "environment variable" if binding.target == "env" else "header"
    return f"{kind} {binding.name}"


def _connection(store: Store, instance: McpInstance, binding: Binding) -> Connection:
    row = store.get_connection(str(binding.connection_id))
    if row is None:
        raise McpConfigError(
            f"{_describe(binding)} of MCP instance {instance.name!r} is bound to connection "
            f"{binding.connection_id!r}, which was deleted; bind another connection"
        )
    connection = Connection.from_row(row)
    if connection.secret_ref is None:
        raise McpConfigError(
            f"{_describe(binding)} of MCP instance {instance.name!r} is bound to {connection.label}, which has "
            "no secret; bind a connection of kind api_key, bearer or basic"
        )
    return connection


def _secret_for(
    store: Store, connection: Connection, binding: Binding, vault: SecretVault, instance: McpInstance
) -> str:
    """Return the value for one binding.

    An env variable gets the raw secret. A header named by the connection's ``header`` setting gets
    the raw secret too. Another header gets the connection's own value for it when the connection
    authenticates with that header (Bearer or Basic for Authorization), else the raw secret.
    An OAuth 2 connection supplies its current access token (renewed first when it is due), never
    the stored token record, which also holds the refresh token.
    """
    if connection.kind == OAUTH_KIND:
        token = access_token_sync(store, vault, connection)
        logger.debug("read the access token of %s for MCP instance %s", connection.label, instance.id)
        if binding.target == "header" and binding.name.lower() == "authorization":
            return f"Bearer {token}"
        return token
    configured = connection.settings.get("header")
    wants_raw = isinstance(configured, str) and configured.lower() == binding.name.lower()
    if binding.target == "header" and not wants_raw:
        headers: Mapping[str, str] = resolve_headers(connection, vault)
        for name, value in headers.items():
            if name.lower() == binding.name.lower():
                return value
    assert connection.secret_ref is not None
    secret = vault.get(connection.secret_ref, label=connection.label)
    logger.debug("read the secret of %s for MCP instance %s", connection.label, instance.id)
    return secret
