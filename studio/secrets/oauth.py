"""OAuth 2 connections: sign-in through the browser, tokens in the vault, refresh before expiry, and httpx auth.

An ``oauth2`` connection keeps its tokens (and a client secret, if any) as one JSON value in the vault
under its ``secret_ref``. The ``connection_oauth`` table keeps only endpoints, client id, scopes and
the expiry time. Two flows exist:

- ``static``: the user gives the authorization and token endpoints and a client id.
- ``mcp``: the connection's ``base_url`` is a remote MCP server; sign-in discovers its authorization
  server and registers a client (see :mod:`studio.secrets.oauth_discovery`).

The MCP engine authenticates its streamable HTTP client with :func:`http_auth_for_connection`::

    auth = http_auth_for_connection(store, vault, connection_id)
    http_client = httpx2.AsyncClient(headers=..., timeout=..., auth=auth)
    transport = streamable_http_client(url, http_client=http_client)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import httpx2
from sqlalchemy import insert, select, update

from studio.secrets import oauth_discovery
from studio.secrets.connections import (
    Connection,
    ConnectionConfigError,
    create_connection,
    get_connection,
    resolve_headers,
)
from studio.secrets.oauth_flow import (
    DEFAULT_SIGN_IN_TIMEOUT_S,
    HTTP_TIMEOUT_S,
    BrowserOpener,
    ClientConfig,
    LoopbackReceiver,
    OAuthError,
    SignInError,
    TokenEndpointError,
    TokenSet,
    refresh_tokens,
    refresh_tokens_sync,
    run_authorization_code_flow,
)
from studio.secrets.vault import SecretNotFoundError, SecretVault
from studio.store import Store
from studio.store.connection_tables import connection_oauth

logger = logging.getLogger(__name__)

OAUTH_KIND = "oauth2"
REFRESH_MARGIN_S = 60.0
"""A token is renewed when it expires within this many seconds, so no request goes out with a dying token."""
FLOWS = ("static", "mcp")
"""Values of ``connection_oauth.flow``: endpoints entered by the user, or discovered from an MCP server."""
Clock = Callable[[], float]


class NotSignedInError(OAuthError):
    """An ``oauth2`` connection without tokens yet."""


class TokenExpiredError(OAuthError):
    """The access token expired and cannot be renewed without a new sign-in."""


class TokenRefreshError(OAuthError):
    """The authorization server rejected the refresh token (revoked, expired, or the client was removed)."""


@dataclass(frozen=True)
class OAuthState:
    """The non-secret OAuth record of one connection (a ``connection_oauth`` row)."""

    connection_id: str
    flow: str
    issuer: str | None
    authorization_endpoint: str | None
    token_endpoint: str | None
    registration_endpoint: str | None
    introspection_endpoint: str | None
    client_id: str | None
    redirect_uri: str | None
    resource: str | None
    scopes: tuple[str, ...]
    expires_at: float | None
    has_refresh_token: bool
    signed_in_at: float | None
    refreshed_at: float | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> OAuthState:
        values = {name: row[name] for name in cls.__dataclass_fields__ if name in row}
        values["scopes"] = tuple(row.get("scopes") or ())
        values["has_refresh_token"] = bool(row.get("has_refresh_token"))
        return cls(**values)

    @property
    def signed_in(self) -> bool:
        return self.signed_in_at is not None

    def client_config(self, client_secret: str | None) -> ClientConfig:
        if not (self.authorization_endpoint and self.token_endpoint and self.client_id):
            raise NotSignedInError(
                f"the OAuth endpoints or client id of connection {self.connection_id} are not known yet; sign in first"
            )
        return ClientConfig(
            authorization_endpoint=self.authorization_endpoint,
            token_endpoint=self.token_endpoint,
            client_id=self.client_id,
            client_secret=client_secret,
            scopes=self.scopes,
            resource=self.resource,
        )


# -- records ------------------------------------------------------------------------------------


def get_oauth_state(store: Store, connection_id: str) -> OAuthState | None:
    """Return the OAuth record of a connection, None when it has none."""
    with store.engine.connect() as db:
        row = db.execute(select(connection_oauth).where(connection_oauth.c.connection_id == connection_id)).first()
    return None if row is None else OAuthState.from_row(dict(row._mapping))


def _save_state(store: Store, connection_id: str, **values: Any) -> OAuthState:
    values["updated_at"] = time.time()
    with store.engine.begin() as db:
        exists = db.execute(
            select(connection_oauth.c.connection_id).where(connection_oauth.c.connection_id == connection_id)
        ).first()
        if exists is None:
            values.setdefault("scopes", [])
            db.execute(insert(connection_oauth).values(connection_id=connection_id, **values))
        else:
            db.execute(update(connection_oauth).where(connection_oauth.c.connection_id == connection_id).values(**values))
    state = get_oauth_state(store, connection_id)
    assert state is not None
    return state


def create_oauth_connection(
    store: Store,
    vault: SecretVault,
    name: str,
    *,
    mcp_server_url: str | None = None,
    authorization_endpoint: str | None = None,
    token_endpoint: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    scopes: Sequence[str] = (),
    provider: str | None = None,
    base_url: str | None = None,
) -> Connection:
    """Create an ``oauth2`` connection; it needs :func:`sign_in` before use.

    Give ``mcp_server_url`` for a remote MCP server (endpoints come from discovery, and a client is
    registered at sign-in unless ``client_id`` names a pre-registered one), or the authorization
    endpoint, token endpoint and client id of a registered client. For an MCP server, discovery
    replaces ``scopes`` with the scopes that the server's 401 challenge or its metadata names.

    Raises:
        ConnectionConfigError: a missing or invalid field.
    """
    if mcp_server_url is not None:
        flow = "mcp"
        base_url = mcp_server_url
    else:
        flow = "static"
        missing = [
            label
            for label, value in (
                ("authorization endpoint", authorization_endpoint),
                ("token endpoint", token_endpoint),
                ("client id", client_id),
            )
            if not value
        ]
        if missing:
            raise ConnectionConfigError(
                f"OAuth connection {name!r} needs the {', '.join(missing)}, or an MCP server URL to discover them"
            )
    for label, url in (("authorization endpoint", authorization_endpoint), ("token endpoint", token_endpoint)):
        if url is not None and not url.startswith(("http://", "https://")):
            raise ConnectionConfigError(f"invalid {label} {url!r}; it must start with http:// or https://")
    secret = json.dumps({"client_secret": client_secret}) if client_secret else None
    connection = create_connection(store, vault, name, OAUTH_KIND, provider, base_url, secret, {})
    _save_state(
        store,
        connection.id,
        flow=flow,
        authorization_endpoint=authorization_endpoint,
        token_endpoint=token_endpoint,
        client_id=client_id,
        scopes=list(scopes),
        resource=None,
        has_refresh_token=False,
    )
    return connection


# -- vault payload ------------------------------------------------------------------------------


def _read_payload(vault: SecretVault, connection: Connection) -> dict[str, str]:
    if connection.secret_ref is None:
        return {}
    try:
        raw = vault.get(connection.secret_ref, label=connection.label)
    except SecretNotFoundError:
        return {}
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise OAuthError(f"the stored tokens of {connection.label} are not readable; sign in again to replace them")
    return {key: value for key, value in payload.items() if isinstance(value, str)}


def _write_payload(vault: SecretVault, connection: Connection, payload: Mapping[str, str]) -> None:
    if connection.secret_ref is None:
        raise OAuthError(f"{connection.label} has no secret reference; delete it and create it again")
    vault.set(connection.secret_ref, json.dumps(dict(payload)), label=connection.label)


def _oauth_connection(store: Store, id_or_name: str) -> tuple[Connection, OAuthState]:
    connection = get_connection(store, id_or_name)
    state = get_oauth_state(store, connection.id)
    if connection.kind != OAUTH_KIND or state is None:
        raise ConnectionConfigError(f"{connection.label} is of kind '{connection.kind}', not '{OAUTH_KIND}'")
    return connection, state


# -- sign-in ------------------------------------------------------------------------------------


async def sign_in(
    store: Store,
    vault: SecretVault,
    id_or_name: str,
    *,
    opener: BrowserOpener | None = None,
    on_url: Callable[[str], None] | None = None,
    timeout: float = DEFAULT_SIGN_IN_TIMEOUT_S,
    clock: Clock = time.time,
) -> OAuthState:
    """Sign a connection in through the browser and keep the tokens in the vault.

    For an ``mcp`` connection this discovers the authorization server, and registers a client when the
    connection has none or its redirect port is taken. ``opener`` replaces the web browser.

    Raises:
        SignInError, oauth_discovery.DiscoveryError, SecretsError.
    """
    connection, state = _oauth_connection(store, id_or_name)
    payload = _read_payload(vault, connection)
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as http:
        if state.flow == "mcp":
            state = await _discover(store, connection, state, http)
        async with contextlib.AsyncExitStack() as stack:
            receiver = await _open_receiver(state, stack)
            if state.flow == "mcp" and _needs_registration(state, receiver.redirect_uri):
                state, payload = await _register(store, vault, connection, state, payload, receiver.redirect_uri, http)
            config = state.client_config(payload.get("client_secret"))
            tokens = await run_authorization_code_flow(
                config, receiver, opener=opener, timeout=timeout, http=http, clock=clock, on_url=on_url
            )
    state = _store_tokens(store, vault, connection, state, tokens, payload, signed_in=True, clock=clock)
    logger.info("Signed in connection %s (%s); token expires at %s", connection.id, connection.name, state.expires_at)
    return state


def _needs_registration(state: OAuthState, redirect_uri: str) -> bool:
    # A dynamically registered client has its redirect URI stored; a pre-registered one has none.
    if state.client_id is None:
        return True
    return state.redirect_uri is not None and state.redirect_uri != redirect_uri


async def _discover(store: Store, connection: Connection, state: OAuthState, http: httpx.AsyncClient) -> OAuthState:
    if not connection.base_url:
        raise ConnectionConfigError(f"{connection.label} has no MCP server URL; set its base URL")
    found = await oauth_discovery.discover(connection.base_url, http)
    changed = state.issuer is not None and state.issuer != found.issuer
    return _save_state(
        store,
        connection.id,
        issuer=found.issuer,
        authorization_endpoint=found.authorization_endpoint,
        token_endpoint=found.token_endpoint,
        registration_endpoint=found.registration_endpoint,
        introspection_endpoint=found.introspection_endpoint,
        resource=found.resource,
        scopes=list(found.scopes),
        # A client id belongs to one authorization server; a new issuer needs a new registration.
        client_id=None if changed else state.client_id,
    )


async def _open_receiver(state: OAuthState, stack: contextlib.AsyncExitStack) -> LoopbackReceiver:
    # Reuse the registered redirect port, so the registered redirect URI still matches. When an MCP
    # connection's port is taken, a new port is used and the client is registered again.
    port = urlsplit(state.redirect_uri).port if state.redirect_uri else None
    if port is not None:
        try:
            return await stack.enter_async_context(LoopbackReceiver(port))
        except SignInError:
            if state.flow != "mcp":
                raise
            logger.info("Redirect port %d is taken; registering the OAuth client again on a new port", port)
    return await stack.enter_async_context(LoopbackReceiver(0))


async def _register(
    store: Store,
    vault: SecretVault,
    connection: Connection,
    state: OAuthState,
    payload: dict[str, str],
    redirect_uri: str,
    http: httpx.AsyncClient,
) -> tuple[OAuthState, dict[str, str]]:
    assert state.token_endpoint is not None
    assert state.authorization_endpoint is not None
    assert state.issuer is not None
    found = oauth_discovery.McpAuthorization(
        resource=state.resource or "",
        issuer=state.issuer,
        authorization_endpoint=state.authorization_endpoint,
        token_endpoint=state.token_endpoint,
        registration_endpoint=state.registration_endpoint,
        introspection_endpoint=state.introspection_endpoint,
        scopes=state.scopes,
    )
    client_id, client_secret = await oauth_discovery.register_client(found, redirect_uri, http)
    payload = {key: value for key, value in payload.items() if key != "client_secret"}
    if client_secret:
        payload["client_secret"] = client_secret
        _write_payload(vault, connection, payload)
    return _save_state(store, connection.id, client_id=client_id, redirect_uri=redirect_uri), payload


def _store_tokens(
    store: Store,
    vault: SecretVault,
    connection: Connection,
    state: OAuthState,
    tokens: TokenSet,
    payload: Mapping[str, str],
    *,
    signed_in: bool,
    clock: Clock,
) -> OAuthState:
    _write_payload(vault, connection, tokens.to_secret(payload.get("client_secret")))
    now = clock()
    values: dict[str, Any] = {
        "expires_at": tokens.expires_at,
        "has_refresh_token": tokens.refresh_token is not None,
        "scopes": list(tokens.scopes or state.scopes),
    }
    values["signed_in_at" if signed_in else "refreshed_at"] = now
    return _save_state(store, connection.id, **values)


# -- tokens -------------------------------------------------------------------------------------


class OAuthTokenSource:
    """The access token of one ``oauth2`` connection, renewed ``margin`` seconds before it expires.

    Async methods serve httpx2/httpx async clients, ``*_sync`` methods serve blocking clients. The
    token is cached in memory after the first vault read. One instance may be shared by many requests;
    a lock makes concurrent callers wait for one refresh.
    """

    def __init__(
        self,
        store: Store,
        vault: SecretVault,
        connection_id: str,
        *,
        margin: float = REFRESH_MARGIN_S,
        clock: Clock = time.time,
    ) -> None:
        self._store = store
        self._vault = vault
        self._connection, self._state = _oauth_connection(store, connection_id)
        self._margin = margin
        self._clock = clock
        self._payload: dict[str, str] | None = None
        self._async_lock = asyncio.Lock()
        self._thread_lock = threading.Lock()

    @property
    def connection(self) -> Connection:
        return self._connection

    async def token(self) -> str:
        """Return a valid access token, refreshing first when it expires within the margin."""
        async with self._async_lock:
            payload = await asyncio.to_thread(self._load)
            if not self._due():
                return payload["access_token"]
            return await self._refresh_locked(payload)

    async def refresh(self, rejected: str | None = None) -> str:
        """Renew the access token; when another caller already replaced ``rejected``, return the newer token."""
        async with self._async_lock:
            payload = await asyncio.to_thread(self._load)
            if rejected is not None and payload["access_token"] != rejected:
                return payload["access_token"]
            return await self._refresh_locked(payload)

    def token_sync(self) -> str:
        with self._thread_lock:
            payload = self._load()
            if not self._due():
                return payload["access_token"]
            refresh_token = self._refresh_token(payload)
            config = self._state.client_config(payload.get("client_secret"))
            try:
                tokens = refresh_tokens_sync(config, refresh_token, clock=self._clock)
            except TokenEndpointError as error:
                renewed = self._renewed_elsewhere(payload)
                if renewed is None:
                    raise self._refresh_error(error) from None
                return renewed
            return self._keep(tokens, payload)

    async def _refresh_locked(self, payload: dict[str, str]) -> str:
        refresh_token = self._refresh_token(payload)
        config = self._state.client_config(payload.get("client_secret"))
        try:
            tokens = await refresh_tokens(config, refresh_token, clock=self._clock)
        except TokenEndpointError as error:
            renewed = await asyncio.to_thread(self._renewed_elsewhere, payload)
            if renewed is None:
                raise self._refresh_error(error) from None
            return renewed
        return await asyncio.to_thread(self._keep, tokens, payload)

    def _renewed_elsewhere(self, used: Mapping[str, str]) -> str | None:
        # Another process (the CLI, a second window) may have renewed and rotated the refresh token
        # since this source read the vault. Its fresh access token serves here too.
        self._payload = None
        current = self._load()
        if current.get("refresh_token") == used.get("refresh_token") or self._due():
            return None
        logger.info("Using the access token that another process renewed for connection %s", self._connection.id)
        return current["access_token"]

    def _load(self) -> dict[str, str]:
        if self._payload is None:
            self._state = get_oauth_state(self._store, self._connection.id) or self._state
            payload = _read_payload(self._vault, self._connection)
            if "access_token" not in payload:
                raise NotSignedInError(
                    f"{self._connection.label} is not signed in; sign in with 'studio connections login "
                    f"{self._connection.name}' or the Sign in button of the Connections panel"
                )
            self._payload = payload
        return self._payload

    def _due(self) -> bool:
        expires_at = self._state.expires_at
        return expires_at is not None and self._clock() >= expires_at - self._margin

    def _refresh_token(self, payload: Mapping[str, str]) -> str:
        refresh_token = payload.get("refresh_token")
        if refresh_token:
            return refresh_token
        expires_at = self._state.expires_at
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires_at)) if expires_at else "an unknown time"
        raise TokenExpiredError(
            f"the access token of {self._connection.label} expires at {when} and the authorization server gave no "
            f"refresh token; sign in again with 'studio connections login {self._connection.name}' or the Sign in "
            "button of the Connections panel"
        )

    def _refresh_error(self, error: TokenEndpointError) -> OAuthError:
        if error.error is None and error.status_code is None:
            return error  # an unreachable endpoint: the message already names what to check
        logger.warning("Token refresh of connection %s was rejected: %s", self._connection.id, error.error)
        return TokenRefreshError(
            f"the token of {self._connection.label} could not be renewed: {error}. The sign-in was revoked or has "
            f"expired; sign in again with 'studio connections login {self._connection.name}' or the Sign in button"
        )

    def _keep(self, tokens: TokenSet, payload: Mapping[str, str]) -> str:
        self._state = _store_tokens(
            self._store, self._vault, self._connection, self._state, tokens, payload, signed_in=False, clock=self._clock
        )
        self._payload = tokens.to_secret(payload.get("client_secret"))
        logger.info("Renewed the access token of connection %s (%s)", self._connection.id, self._connection.name)
        return tokens.access_token


# -- httpx auth ---------------------------------------------------------------------------------


class _StaticHeaders:
    """Headers of an api_key, bearer or basic connection, read from the vault once."""

    def __init__(self, connection: Connection, vault: SecretVault) -> None:
        self.headers = resolve_headers(connection, vault)


class ConnectionAuth(httpx2.Auth):
    """httpx2 authentication with a connection's secret, for the MCP SDK's streamable HTTP client.

    ``oauth2`` connections get a bearer token that is renewed before it expires, and once more when the
    server still responds with 401. Other kinds get their fixed headers.
    """

    def __init__(self, source: OAuthTokenSource | _StaticHeaders) -> None:
        self._source = source

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if isinstance(self._source, _StaticHeaders):
            request.headers.update(self._source.headers)
            yield request
            return
        token = await self._source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {await self._source.refresh(rejected=token)}"
            yield request

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        raise OAuthError("ConnectionAuth serves async clients only; use httpx_auth_for_connection for blocking ones")


class HttpxConnectionAuth(httpx.Auth):
    """The same authentication as :class:`ConnectionAuth` for ``httpx`` clients, blocking or async."""

    def __init__(self, source: OAuthTokenSource | _StaticHeaders) -> None:
        self._source = source

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if isinstance(self._source, _StaticHeaders):
            request.headers.update(self._source.headers)
            yield request
            return
        token = await self._source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {await self._source.refresh(rejected=token)}"
            yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if isinstance(self._source, _StaticHeaders):
            request.headers.update(self._source.headers)
        else:
            request.headers["Authorization"] = f"Bearer {self._source.token_sync()}"
        yield request


def _source_for(
    store: Store, vault: SecretVault, connection_id: str, margin: float, clock: Clock
) -> OAuthTokenSource | _StaticHeaders:
    connection = get_connection(store, connection_id)
    if connection.kind == OAUTH_KIND:
        return OAuthTokenSource(store, vault, connection.id, margin=margin, clock=clock)
    return _StaticHeaders(connection, vault)


def http_auth_for_connection(
    store: Store, vault: SecretVault, connection_id: str, *, margin: float = REFRESH_MARGIN_S, clock: Clock = time.time
) -> httpx2.Auth:
    """Return httpx2 auth for the MCP streamable HTTP client from a connection of any kind.

    Raises:
        ConnectionNotFoundError, SecretsError: the connection or its secret is missing or unreadable.
    """
    return ConnectionAuth(_source_for(store, vault, connection_id, margin, clock))


def httpx_auth_for_connection(
    store: Store, vault: SecretVault, connection_id: str, *, margin: float = REFRESH_MARGIN_S, clock: Clock = time.time
) -> httpx.Auth:
    """Return ``httpx`` auth (blocking or async clients) from a connection of any kind."""
    return HttpxConnectionAuth(_source_for(store, vault, connection_id, margin, clock))


def access_token_sync(store: Store, vault: SecretVault, connection: Connection) -> str:
    """Return a fresh access token of an ``oauth2`` connection, refreshing with a blocking request when due."""
    return OAuthTokenSource(store, vault, connection.id).token_sync()
