"""OAuth 2 authorization code flow with PKCE: the loopback redirect receiver and the token endpoint requests.

This module does not depend on connections or the store. ``studio.secrets.oauth`` builds sign-in and
token refresh for connections on top of it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import inspect
import logging
import secrets
import time
import webbrowser
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from studio.secrets.vault import SecretsError

logger = logging.getLogger(__name__)

CALLBACK_PATH = "/callback"
DEFAULT_SIGN_IN_TIMEOUT_S = 300.0
"""How long a sign-in waits for the browser to come back to the loopback redirect."""
HTTP_TIMEOUT_S = 30.0

BrowserOpener = Callable[[str], "Awaitable[object] | object"]
"""Opens the authorization URL. ``webbrowser.open`` by default; tests pass a coroutine function that
follows the URL with httpx. When it returns an awaitable, the flow runs it next to the redirect wait."""


class OAuthError(SecretsError):
    """A failed OAuth operation. The message names the step and the fix, never a token."""


class SignInError(OAuthError):
    """The browser sign-in did not produce tokens: denied, timed out, a wrong state, a failed code exchange."""


class TokenEndpointError(OAuthError):
    """The token endpoint rejected a request; ``error`` is the OAuth error code (``invalid_grant``, …)."""

    def __init__(self, message: str, error: str | None, status_code: int | None) -> None:
        super().__init__(message)
        self.error = error
        self.status_code = status_code


@dataclass(frozen=True)
class TokenSet:
    """Tokens from a token endpoint response. ``expires_at`` is Unix seconds, None when the server gave no lifetime."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    scopes: tuple[str, ...] = ()
    token_type: str = "Bearer"

    def to_secret(self, client_secret: str | None = None) -> dict[str, str]:
        """Return the vault payload: the tokens and the client secret, nothing else."""
        payload = {"access_token": self.access_token}
        if self.refresh_token:
            payload["refresh_token"] = self.refresh_token
        if client_secret:
            payload["client_secret"] = client_secret
        return payload


@dataclass(frozen=True)
class ClientConfig:
    """Everything the authorization code flow needs about one client at one authorization server."""

    authorization_endpoint: str
    token_endpoint: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    resource: str | None = None
    """RFC 8707 resource indicator, sent with the authorization and token requests (the MCP server URL)."""


@dataclass(frozen=True)
class Pkce:
    """A PKCE verifier and its S256 challenge (RFC 7636)."""

    verifier: str = field(repr=False)
    challenge: str

    @classmethod
    def create(cls) -> Pkce:
        # 64 random bytes give 86 URL-safe characters, inside the 43-128 that RFC 7636 allows.
        verifier = secrets.token_urlsafe(64)
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        return cls(verifier=verifier, challenge=challenge)


# -- loopback redirect --------------------------------------------------------------------------


class LoopbackReceiver:
    """A one-shot HTTP listener on 127.0.0.1 that receives the authorization redirect (RFC 8252 section 7.3).

    ``port`` 0 picks a free port. Use as an async context manager; :attr:`redirect_uri` is valid inside.
    """

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._result: asyncio.Future[dict[str, str]] | None = None
        self.port = port

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    async def __aenter__(self) -> LoopbackReceiver:
        self._result = asyncio.get_running_loop().create_future()
        try:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self._requested_port)
        except OSError as error:
            raise SignInError(
                f"could not listen on 127.0.0.1 port {self._requested_port} for the sign-in redirect: {error}; "
                "close the program that uses the port, or sign in again to register a new redirect port"
            ) from None
        self.port = int(self._server.sockets[0].getsockname()[1])
        logger.debug("Listening for the OAuth redirect on %s", self.redirect_uri)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        if self._result is not None and not self._result.done():
            self._result.cancel()

    async def wait(self, timeout: float) -> dict[str, str]:
        """Return the query parameters of the first request to the callback path."""
        assert self._result is not None, "use LoopbackReceiver as an async context manager"
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), timeout)
        except TimeoutError:
            raise SignInError(
                f"the sign-in did not come back to {self.redirect_uri} within {timeout:.0f} s; finish the sign-in "
                "in the browser, then try again"
            ) from None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 10.0)
            while (await asyncio.wait_for(reader.readline(), 10.0)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            target = urlsplit(parts[1]) if len(parts) >= 2 else None
            if target is None or parts[0] != "GET" or target.path != CALLBACK_PATH:
                await _reply(writer, 404, "Not found. This port only receives a Workflow Studio sign-in.")
                return
            params = {key: values[0] for key, values in parse_qs(target.query).items()}
            failed = "error" in params
            text = "Sign-in failed; return to Workflow Studio." if failed else "Signed in. You can close this tab."
            await _reply(writer, 400 if failed else 200, text)
            if self._result is not None and not self._result.done():
                self._result.set_result(params)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            logger.warning("Could not read a request on the OAuth redirect port %d: %s", self.port, error)
        finally:
            writer.close()


async def _reply(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    body = f"<!doctype html><title>Workflow Studio</title><p>{text}</p>".encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode("ascii") + body)
    await writer.drain()


# -- authorization code flow --------------------------------------------------------------------


def authorization_url(config: ClientConfig, redirect_uri: str, state: str, pkce: Pkce) -> str:
    """Build the URL the browser opens to ask the user for consent."""
    params = {
        "response_type": "code",
        "client_id": config.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    }
    if config.scopes:
        params["scope"] = " ".join(config.scopes)
    if config.resource:
        params["resource"] = config.resource
    separator = "&" if urlsplit(config.authorization_endpoint).query else "?"
    return f"{config.authorization_endpoint}{separator}{urlencode(params)}"


async def run_authorization_code_flow(
    config: ClientConfig,
    receiver: LoopbackReceiver,
    *,
    opener: BrowserOpener | None = None,
    timeout: float = DEFAULT_SIGN_IN_TIMEOUT_S,
    http: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
    on_url: Callable[[str], None] | None = None,
) -> TokenSet:
    """Open the browser at the authorization endpoint, wait for the redirect and exchange the code for tokens.

    ``receiver`` must be entered already; its redirect URI is the one the client was registered with.
    ``on_url`` gets the authorization URL before the browser opens (the CLI prints it).

    Raises:
        SignInError: denied, timed out, state mismatch, no code, or the code exchange failed.
    """
    pkce = Pkce.create()
    state = secrets.token_urlsafe(24)
    url = authorization_url(config, receiver.redirect_uri, state, pkce)
    if on_url is not None:
        on_url(url)
    logger.info("Opening the browser for OAuth sign-in at %s", config.authorization_endpoint)
    opened = (opener or webbrowser.open)(url)
    browser_task = asyncio.ensure_future(opened) if inspect.isawaitable(opened) else None
    try:
        params = await receiver.wait(timeout)
    finally:
        if browser_task is not None:
            await _finish_browser(browser_task)
    code = _check_redirect(params, state, config)
    try:
        return await exchange_code(config, code, receiver.redirect_uri, pkce, http=http, clock=clock)
    except TokenEndpointError as error:
        raise SignInError(f"sign-in failed at the code exchange: {error}") from None


async def _finish_browser(task: asyncio.Future[Any]) -> None:
    # The opener may still be reading the callback page; its errors do not decide the sign-in.
    try:
        await asyncio.wait_for(task, 10.0)
    except Exception as error:
        logger.debug("The browser opener ended with %s", type(error).__name__)


def _check_redirect(params: Mapping[str, str], state: str, config: ClientConfig) -> str:
    if params.get("state") != state:
        raise SignInError(
            "sign-in rejected: the redirect's state parameter does not match the request (a stale browser tab or "
            "a forged redirect); start the sign-in again"
        )
    if "error" in params:
        description = params.get("error_description", "")
        raise SignInError(
            f"the authorization server {config.authorization_endpoint} rejected the sign-in: {params['error']}"
            f"{': ' + description if description else ''}; check the client id and scopes, then sign in again"
        )
    code = params.get("code")
    if not code:
        raise SignInError("the sign-in redirect carried no authorization code; start the sign-in again")
    return code


async def exchange_code(
    config: ClientConfig,
    code: str,
    redirect_uri: str,
    pkce: Pkce,
    *,
    http: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
) -> TokenSet:
    """Exchange an authorization code for tokens (with the PKCE verifier)."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": config.client_id,
        "code_verifier": pkce.verifier,
    }
    if config.resource:
        form["resource"] = config.resource
    return await _token_request(config, form, http=http, clock=clock, action="code exchange")


async def refresh_tokens(
    config: ClientConfig,
    refresh_token: str,
    *,
    http: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
) -> TokenSet:
    """Use a refresh token; a response without a new refresh token keeps the old one."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": config.client_id}
    if config.scopes:
        form["scope"] = " ".join(config.scopes)
    if config.resource:
        form["resource"] = config.resource
    tokens = await _token_request(config, form, http=http, clock=clock, action="token refresh")
    if tokens.refresh_token is None:
        tokens = TokenSet(tokens.access_token, refresh_token, tokens.expires_at, tokens.scopes, tokens.token_type)
    return tokens


def refresh_tokens_sync(
    config: ClientConfig, refresh_token: str, *, clock: Callable[[], float] = time.time
) -> TokenSet:
    """Blocking variant of :func:`refresh_tokens` for synchronous HTTP clients."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": config.client_id}
    if config.scopes:
        form["scope"] = " ".join(config.scopes)
    if config.resource:
        form["resource"] = config.resource
    auth = _client_auth(config)
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT_S) as client:
            response = client.post(config.token_endpoint, data=form, auth=auth, headers={"Accept": "application/json"})
    except httpx.HTTPError as error:
        raise _unreachable(config, "token refresh", error) from None
    tokens = _parse_token_response(config, response, clock(), "token refresh", secrets_in=form)
    if tokens.refresh_token is None:
        tokens = TokenSet(tokens.access_token, refresh_token, tokens.expires_at, tokens.scopes, tokens.token_type)
    return tokens


async def _token_request(
    config: ClientConfig,
    form: dict[str, str],
    *,
    http: httpx.AsyncClient | None,
    clock: Callable[[], float],
    action: str,
) -> TokenSet:
    auth = _client_auth(config)
    headers = {"Accept": "application/json"}
    try:
        if http is not None:
            response = await http.post(config.token_endpoint, data=form, auth=auth, headers=headers)
        else:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
                response = await client.post(config.token_endpoint, data=form, auth=auth, headers=headers)
    except httpx.HTTPError as error:
        raise _unreachable(config, action, error) from None
    return _parse_token_response(config, response, clock(), action, secrets_in=form)


def _client_auth(config: ClientConfig) -> Any:
    # A confidential client authenticates with HTTP Basic (client_secret_basic); a public one sends only its id.
    if config.client_secret:
        return httpx.BasicAuth(config.client_id, config.client_secret)
    return httpx.USE_CLIENT_DEFAULT


def _unreachable(config: ClientConfig, action: str, error: httpx.HTTPError) -> TokenEndpointError:
    return TokenEndpointError(
        f"the {action} failed: the token endpoint {config.token_endpoint} could not be reached "
        f"({type(error).__name__}: {error}); check the network and the endpoint URL",
        None,
        None,
    )


def _parse_token_response(
    config: ClientConfig, response: httpx.Response, now: float, action: str, *, secrets_in: Mapping[str, str]
) -> TokenSet:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else None
        description = body.get("error_description") if isinstance(body, dict) else None
        detail = error or f"HTTP {response.status_code}"
        if isinstance(description, str) and description:
            detail += f": {redact(description, secrets_in.values())}"
        raise TokenEndpointError(
            f"the {action} was rejected by {config.token_endpoint} ({detail})", error, response.status_code
        )
    token_type = str(body.get("token_type") or "Bearer")
    if token_type.lower() != "bearer":
        raise TokenEndpointError(
            f"the {action} at {config.token_endpoint} returned a token of type {token_type!r}; only Bearer tokens "
            "are supported",
            None,
            response.status_code,
        )
    expires_in = body.get("expires_in")
    scope = body.get("scope")
    return TokenSet(
        access_token=body["access_token"],
        refresh_token=body.get("refresh_token") if isinstance(body.get("refresh_token"), str) else None,
        expires_at=now + float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else None,
        scopes=tuple(scope.split()) if isinstance(scope, str) else config.scopes,
        token_type="Bearer",
    )


def redact(text: str, values: Sequence[str] | Any) -> str:
    """Replace every secret-looking value of ``values`` (8 characters or more) in ``text``."""
    for value in values:
        if isinstance(value, str) and len(value) >= 8:
            text = text.replace(value, "[secret]")
    return text
