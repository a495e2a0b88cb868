"""Loopback OAuth 2 authorization server and an MCP streamable HTTP server that accepts only its tokens.

Both are real HTTP servers: uvicorn serves Starlette apps on 127.0.0.1 (free ports) in background threads.

``FakeOAuthServer`` serves RFC 8414 metadata, RFC 7591 registration, ``/authorize`` (approves at once and
redirects with a code, unless ``deny_authorization`` is set), ``/token`` (authorization_code with PKCE S256
verification and the RFC 8707 ``resource`` check, refresh_token with rotation) and ``/introspect``. Its clock
is ``time.time()`` plus ``clock_offset``: :meth:`advance` moves it, so tokens expire when the test decides.

``ProtectedMcpServer`` is an ``mcp`` SDK ``MCPServer``. Its streamable HTTP endpoint ``/mcp`` responds with
401 and ``WWW-Authenticate: Bearer resource_metadata=...`` until it gets a token that the OAuth server issued
for it, and it publishes its protected resource metadata under ``/.well-known/oauth-protected-resource/mcp``.

Usage::

    with oauth_server() as auth, protected_mcp_server(auth) as mcp_server:
        ...  # sign in against mcp_server.url; auth.token_requests counts the grants
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import uvicorn
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

_START_TIMEOUT_S = 10.0


@dataclass
class IssuedToken:
    """An access or refresh token the fake server issued."""

    client_id: str
    scopes: list[str]
    resource: str | None
    expires_at: float | None


@dataclass
class RegisteredClient:
    client_id: str
    redirect_uris: list[str]
    client_secret: str | None = None


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    scopes: list[str]
    resource: str | None
    expires_at: float


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)


class _ThreadedApp:
    """A Starlette app served by uvicorn on a loopback port chosen before the app is built."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.port: int = self._socket.getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def serve(self, app: Starlette) -> None:
        started = threading.Event()

        async def signalling_app(scope: Any, receive: Any, send: Any) -> None:
            # Report the end of the lifespan startup, after which the listening socket is served.
            async def send_signalling(message: Any) -> None:
                await send(message)
                if message["type"] == "lifespan.startup.complete":
                    started.set()

            await app(scope, receive, send_signalling if scope["type"] == "lifespan" else send)

        config = uvicorn.Config(
            signalling_app, log_level="warning", access_log=False, lifespan="on", loop="asyncio", http="h11"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        if not started.wait(_START_TIMEOUT_S):
            raise RuntimeError(f"test server on port {self.port} did not start within {_START_TIMEOUT_S} s")

    def close(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(_START_TIMEOUT_S)
        self._socket.close()


class FakeOAuthServer(_ThreadedApp):
    """An OAuth 2 authorization server for tests; every value it issues is random per run."""

    def __init__(self, *, token_lifetime: float = 3600.0, scopes: tuple[str, ...] = ("mcp:tools",)) -> None:
        super().__init__()
        self.base_url = self.origin
        self.token_lifetime = token_lifetime
        self.scopes = scopes
        self.clock_offset = 0.0
        self.deny_authorization = False
        self.refuse_refresh = False
        self.issue_refresh_tokens = True
        self.clients: dict[str, RegisteredClient] = {}
        self.access_tokens: dict[str, IssuedToken] = {}
        self.refresh_tokens: dict[str, IssuedToken] = {}
        self.requests: list[RecordedRequest] = []
        self._codes: dict[str, _Code] = {}
        self._lock = threading.Lock()

    # -- test controls ----------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance(self, seconds: float) -> None:
        """Move the server's clock forward, so tokens expire without waiting."""
        self.clock_offset += seconds

    def add_client(self, redirect_uris: list[str] | None = None, *, confidential: bool = False) -> RegisteredClient:
        """Register a client by hand, as an administrator would; no redirect URIs means any loopback callback."""
        client = RegisteredClient(
            client_id=f"static-{secrets.token_hex(4)}",
            redirect_uris=list(redirect_uris or []),
            client_secret=secrets.token_urlsafe(16) if confidential else None,
        )
        with self._lock:
            self.clients[client.client_id] = client
        return client

    def revoke_access_tokens(self) -> None:
        """Forget every access token, as a server restart or a revocation would; refresh tokens stay valid."""
        with self._lock:
            self.access_tokens.clear()

    def verify(self, token: str) -> IssuedToken | None:
        """Return the token's record when it is a live access token."""
        with self._lock:
            issued = self.access_tokens.get(token)
        if issued is None or (issued.expires_at is not None and issued.expires_at <= self.now()):
            return None
        return issued

    def token_requests(self, grant_type: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/token" and r.params.get("grant_type") == grant_type]

    @property
    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.base_url,
            "authorization_endpoint": f"{self.base_url}/authorize",
            "token_endpoint": f"{self.base_url}/token",
            "registration_endpoint": f"{self.base_url}/register",
            "introspection_endpoint": f"{self.base_url}/introspect",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
            "scopes_supported": list(self.scopes),
        }

    def start(self) -> None:
        routes = [
            Route("/.well-known/oauth-authorization-server", self._metadata, methods=["GET"]),
            Route("/register", self._register, methods=["POST"]),
            Route("/authorize", self._authorize, methods=["GET"]),
            Route("/token", self._token, methods=["POST"]),
            Route("/introspect", self._introspect, methods=["POST"]),
        ]
        self.serve(Starlette(routes=routes))

    # -- endpoints --------------------------------------------------------------------------

    async def _metadata(self, request: Request) -> Response:
        self.requests.append(RecordedRequest("GET", request.url.path))
        return JSONResponse(self.metadata)

    async def _register(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(RecordedRequest("POST", "/register", {"client_name": str(body.get("client_name"))}))
        uris = body.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
            return _oauth_error("invalid_redirect_uri", "redirect_uris is required", 400)
        client = RegisteredClient(client_id=f"dyn-{secrets.token_hex(6)}", redirect_uris=uris)
        with self._lock:
            self.clients[client.client_id] = client
        return JSONResponse(
            {"client_id": client.client_id, "redirect_uris": uris, "client_id_issued_at": int(self.now())}, 201
        )

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.requests.append(RecordedRequest("GET", "/authorize", params))
        client = self.clients.get(params.get("client_id", ""))
        redirect_uri = params.get("redirect_uri", "")
        if client is None or not _redirect_allowed(client, redirect_uri):
            return _oauth_error("invalid_request", "unknown client_id or redirect_uri", 400)
        state = params.get("state", "")
        if self.deny_authorization:
            return _redirect(
                redirect_uri, error="access_denied", error_description="the user denied access", state=state
            )
        if params.get("response_type") != "code" or params.get("code_challenge_method") != "S256":
            return _redirect(redirect_uri, error="invalid_request", state=state)
        code = secrets.token_urlsafe(16)
        self._codes[code] = _Code(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            challenge=params.get("code_challenge", ""),
            scopes=params.get("scope", "").split(),
            resource=params.get("resource"),
            expires_at=self.now() + 60,
        )
        return _redirect(redirect_uri, code=code, state=state)

    async def _token(self, request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        self.requests.append(RecordedRequest("POST", "/token", {"grant_type": form.get("grant_type", "")}))
        client_id = self._client_id(request, form)
        if client_id is None:
            return _oauth_error("invalid_client", "unknown client or wrong client secret", 401)
        if form.get("grant_type") == "authorization_code":
            return self._exchange_code(client_id, form)
        if form.get("grant_type") == "refresh_token":
            return self._refresh(client_id, form)
        return _oauth_error("unsupported_grant_type", "use authorization_code or refresh_token", 400)

    def _client_id(self, request: Request, form: dict[str, str]) -> str | None:
        header = request.headers.get("Authorization", "")
        client_id, secret = form.get("client_id", ""), None
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        client = self.clients.get(client_id)
        if client is None or client.client_secret != secret:
            return None
        return client_id

    def _exchange_code(self, client_id: str, form: dict[str, str]) -> Response:
        code = self._codes.pop(form.get("code", ""), None)
        if code is None or code.client_id != client_id or code.expires_at < self.now():
            return _oauth_error("invalid_grant", "unknown, used or expired authorization code", 400)
        if form.get("redirect_uri") != code.redirect_uri:
            return _oauth_error("invalid_grant", "redirect_uri differs from the authorization request", 400)
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != code.challenge:
            return _oauth_error("invalid_grant", "PKCE verification failed", 400)
        if form.get("resource") != code.resource:
            return _oauth_error("invalid_target", "resource differs from the authorization request", 400)
        return self._issue(client_id, code.scopes, code.resource)

    def _refresh(self, client_id: str, form: dict[str, str]) -> Response:
        with self._lock:
            issued = self.refresh_tokens.get(form.get("refresh_token", ""))
        if self.refuse_refresh or issued is None or issued.client_id != client_id:
            return _oauth_error("invalid_grant", "the refresh token is invalid or revoked", 400)
        with self._lock:
            del self.refresh_tokens[form["refresh_token"]]
        return self._issue(client_id, issued.scopes, issued.resource)

    def _issue(self, client_id: str, scopes: list[str], resource: str | None) -> Response:
        access = secrets.token_urlsafe(24)
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(self.token_lifetime),
            "scope": " ".join(scopes),
        }
        with self._lock:
            self.access_tokens[access] = IssuedToken(client_id, scopes, resource, self.now() + self.token_lifetime)
            if self.issue_refresh_tokens:
                refresh = secrets.token_urlsafe(24)
                self.refresh_tokens[refresh] = IssuedToken(client_id, scopes, resource, None)
                body["refresh_token"] = refresh
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def _introspect(self, request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        self.requests.append(RecordedRequest("POST", "/introspect"))
        issued = self.verify(form.get("token", ""))
        if issued is None:
            return JSONResponse({"active": False})
        return JSONResponse(
            {"active": True, "client_id": issued.client_id, "scope": " ".join(issued.scopes), "exp": issued.expires_at}
        )


def _redirect_allowed(client: RegisteredClient, redirect_uri: str) -> bool:
    if client.redirect_uris:
        return redirect_uri in client.redirect_uris
    parts = urlsplit(redirect_uri)
    return parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.path == "/callback"


def _redirect(redirect_uri: str, **params: str) -> Response:
    return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)


def _oauth_error(error: str, description: str, status: int) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


class _Verifier:
    """Token verifier of the MCP server: it looks tokens up in the fake OAuth server, in-process."""

    def __init__(self, oauth: FakeOAuthServer) -> None:
        self._oauth = oauth

    async def verify_token(self, token: str) -> AccessToken | None:
        issued = self._oauth.verify(token)
        if issued is None:
            return None
        expires = int(issued.expires_at) if issued.expires_at is not None else None
        return AccessToken(
            token=token, client_id=issued.client_id, scopes=issued.scopes, expires_at=expires, resource=issued.resource
        )


class ProtectedMcpServer(_ThreadedApp):
    """An MCP server on loopback that requires tokens from ``oauth`` for ``url`` with ``mcp:tools`` scope."""

    def __init__(self, oauth: FakeOAuthServer) -> None:
        super().__init__()
        self.url = f"{self.origin}/mcp"
        self.calls = 0
        settings = AuthSettings(
            issuer_url=oauth.base_url,
            resource_server_url=self.url,
            required_scopes=list(oauth.scopes),
            validate_token_resource=True,
        )
        self.server = MCPServer("Protected test server", auth=settings, token_verifier=_Verifier(oauth))

        @self.server.tool()
        def echo(text: str) -> str:
            """Return the text unchanged."""
            self.calls += 1
            return text

    def start(self) -> None:
        self.serve(self.server.streamable_http_app(host="127.0.0.1"))


class ForeignResourceServer(_ThreadedApp):
    """An MCP endpoint whose protected resource metadata names another server's URL as the resource.

    ``{origin}`` in ``claimed_resource`` becomes this server's own origin.
    """

    def __init__(self, oauth: FakeOAuthServer, claimed_resource: str) -> None:
        super().__init__()
        self.url = f"{self.origin}/mcp"
        resource = claimed_resource.format(origin=self.origin)
        self._metadata = {"resource": resource, "authorization_servers": [oauth.base_url]}

    def start(self) -> None:
        metadata_url = f"{self.origin}/.well-known/oauth-protected-resource/mcp"

        async def endpoint(_request: Request) -> Response:
            challenge = f'Bearer error="invalid_token", resource_metadata="{metadata_url}"'
            return JSONResponse({"error": "invalid_token"}, 401, headers={"WWW-Authenticate": challenge})

        async def metadata(_request: Request) -> Response:
            return JSONResponse(self._metadata)

        routes = [
            Route("/mcp", endpoint, methods=["GET", "POST"]),
            Route("/.well-known/oauth-protected-resource/mcp", metadata, methods=["GET"]),
        ]
        self.serve(Starlette(routes=routes))


@contextlib.contextmanager
def oauth_server(*, token_lifetime: float = 3600.0) -> Iterator[FakeOAuthServer]:
    """Start a fake OAuth authorization server on 127.0.0.1 and stop it on exit."""
    server = FakeOAuthServer(token_lifetime=token_lifetime)
    server.start()
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def protected_mcp_server(oauth: FakeOAuthServer) -> Iterator[ProtectedMcpServer]:
    """Start an MCP server that accepts only ``oauth``'s tokens, and stop it on exit."""
    server = ProtectedMcpServer(oauth)
    server.start()
    try:
        yield server
    finally:
        server.close()
