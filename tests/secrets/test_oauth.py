"""OAuth connections against loopback servers: PKCE sign-in, refresh before expiry, refused refresh, MCP discovery."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from studio.secrets import SecretVault, open_vault
from studio.secrets.oauth import (
    NotSignedInError,
    OAuthTokenSource,
    TokenExpiredError,
    TokenRefreshError,
    create_oauth_connection,
    get_oauth_state,
    http_auth_for_connection,
    httpx_auth_for_connection,
    sign_in,
)
from studio.secrets.oauth_discovery import DiscoveryError, parse_www_authenticate
from studio.secrets.oauth_flow import SignInError
from studio.store import Store
from tests.fakes.oauth_server import (
    FakeOAuthServer,
    ForeignResourceServer,
    ProtectedMcpServer,
    oauth_server,
    protected_mcp_server,
)
from tests.fakes.openai_server import openai_server
from tests.secrets.keyring_backends import MemoryKeyring


@pytest.fixture
def auth_server() -> Iterator[FakeOAuthServer]:
    with oauth_server() as server:
        yield server


@pytest.fixture
def mcp_server(auth_server: FakeOAuthServer) -> Iterator[ProtectedMcpServer]:
    with protected_mcp_server(auth_server) as server:
        yield server


@pytest.fixture
def vault(store: Store, memory_keyring: MemoryKeyring) -> SecretVault:
    return open_vault(store.workspace_slug(), environ={})


async def follow_in_browser(url: str) -> httpx.Response:
    """Play the browser: follow the authorization URL and its redirect to the loopback callback."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=10.0) as client:
        return await client.get(url)


class Clock:
    """A client clock the test moves; it starts at the real time, as the fake server's clock does."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def stored_tokens(keychain: MemoryKeyring) -> dict[str, str]:
    (value,) = keychain.values.values()
    tokens: dict[str, str] = json.loads(value)
    return tokens


async def signed_in_static(
    store: Store, vault: SecretVault, server: FakeOAuthServer, clock: Clock | None = None
) -> str:
    client = server.add_client()
    connection = create_oauth_connection(
        store,
        vault,
        "Static OAuth",
        authorization_endpoint=f"{server.base_url}/authorize",
        token_endpoint=f"{server.base_url}/token",
        client_id=client.client_id,
        scopes=["mcp:tools"],
    )
    await sign_in(store, vault, connection.name, opener=follow_in_browser, timeout=10, clock=clock or time.time)
    return connection.id


async def test_pkce_sign_in_stores_tokens_in_vault(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer, memory_keyring: MemoryKeyring
) -> None:
    connection_id = await signed_in_static(store, vault, auth_server)

    authorize = next(r for r in auth_server.requests if r.path == "/authorize")
    assert authorize.params["code_challenge_method"] == "S256"
    assert authorize.params["redirect_uri"].startswith("http://127.0.0.1:")
    assert authorize.params["redirect_uri"].endswith("/callback")
    assert len(auth_server.token_requests("authorization_code")) == 1
    tokens = stored_tokens(memory_keyring)
    assert auth_server.verify(tokens["access_token"]) is not None
    assert tokens["refresh_token"] in auth_server.refresh_tokens
    state = get_oauth_state(store, connection_id)
    assert state is not None
    assert state.signed_in
    assert state.has_refresh_token
    assert state.expires_at is not None
    assert abs(state.expires_at - (time.time() + 3600)) < 60
    assert state.scopes == ("mcp:tools",)
    database = b"".join(p.read_bytes() for p in Path(str(store.path)).parent.glob("studio.db*"))
    assert tokens["access_token"].encode() not in database
    assert tokens["refresh_token"].encode() not in database


async def test_token_used_by_httpx_client(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer, memory_keyring: MemoryKeyring
) -> None:
    connection_id = await signed_in_static(store, vault, auth_server)
    auth = httpx_auth_for_connection(store, vault, connection_id)

    with openai_server() as api, httpx.Client(auth=auth) as client:
        response = client.get(f"{api.base_url}/models")
        sent = api.requests[-1].headers["authorization"]

    assert response.status_code == 200
    assert sent == f"Bearer {stored_tokens(memory_keyring)['access_token']}"


async def test_sign_in_rejects_wrong_state(store: Store, vault: SecretVault, auth_server: FakeOAuthServer) -> None:
    client = auth_server.add_client()
    connection = create_oauth_connection(
        store,
        vault,
        "Forged",
        authorization_endpoint=f"{auth_server.base_url}/authorize",
        token_endpoint=f"{auth_server.base_url}/token",
        client_id=client.client_id,
    )

    async def forge_redirect(url: str) -> None:
        redirect_uri = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        async with httpx.AsyncClient() as http:
            await http.get(redirect_uri, params={"code": "stolen", "state": "not-the-state"})

    with pytest.raises(SignInError, match="state parameter does not match"):
        await sign_in(store, vault, connection.id, opener=forge_redirect, timeout=10)
    assert auth_server.token_requests("authorization_code") == []
    state = get_oauth_state(store, connection.id)
    assert state is not None
    assert not state.signed_in


async def test_sign_in_reports_denied_access(store: Store, vault: SecretVault, auth_server: FakeOAuthServer) -> None:
    auth_server.deny_authorization = True
    with pytest.raises(SignInError, match="access_denied"):
        await signed_in_static(store, vault, auth_server)


async def test_sign_in_times_out_without_redirect(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer
) -> None:
    client = auth_server.add_client()
    connection = create_oauth_connection(
        store,
        vault,
        "Abandoned",
        authorization_endpoint=f"{auth_server.base_url}/authorize",
        token_endpoint=f"{auth_server.base_url}/token",
        client_id=client.client_id,
    )
    urls: list[str] = []
    with pytest.raises(SignInError, match="did not come back"):
        await sign_in(store, vault, connection.id, opener=urls.append, timeout=0.2)
    assert urls[0].startswith(f"{auth_server.base_url}/authorize?")


async def test_refresh_before_expiry(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer, memory_keyring: MemoryKeyring
) -> None:
    clock = Clock()
    connection_id = await signed_in_static(store, vault, auth_server, clock)
    first = stored_tokens(memory_keyring)["access_token"]
    source = OAuthTokenSource(store, vault, connection_id, margin=60, clock=clock)

    clock.offset = 3600 - 120
    assert await source.token() == first
    assert auth_server.token_requests("refresh_token") == []

    clock.offset = 3600 - 30
    renewed = await source.token()

    assert renewed != first
    assert len(auth_server.token_requests("refresh_token")) == 1
    # The server's clock did not move: the old token was still valid, so the renewal came before expiry.
    assert auth_server.verify(first) is not None
    assert stored_tokens(memory_keyring)["access_token"] == renewed
    state = get_oauth_state(store, connection_id)
    assert state is not None
    assert state.refreshed_at is not None
    assert state.expires_at is not None
    assert state.expires_at > clock() + 3000


async def test_refused_refresh_says_sign_in_again(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer, memory_keyring: MemoryKeyring
) -> None:
    clock = Clock()
    connection_id = await signed_in_static(store, vault, auth_server, clock)
    tokens = stored_tokens(memory_keyring)
    auth_server.refuse_refresh = True
    clock.offset = 4000

    with pytest.raises(TokenRefreshError) as raised:
        await OAuthTokenSource(store, vault, connection_id, clock=clock).token()

    message = str(raised.value)
    assert "invalid_grant" in message
    assert "studio connections login Static OAuth" in message
    assert tokens["access_token"] not in message
    assert tokens["refresh_token"] not in message


async def test_refused_refresh_blocking_client(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer
) -> None:
    clock = Clock()
    connection_id = await signed_in_static(store, vault, auth_server, clock)
    auth_server.refuse_refresh = True
    clock.offset = 4000

    with pytest.raises(TokenRefreshError, match="could not be renewed"):
        OAuthTokenSource(store, vault, connection_id, clock=clock).token_sync()


async def test_expired_token_without_refresh_token(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer
) -> None:
    auth_server.issue_refresh_tokens = False
    clock = Clock()
    connection_id = await signed_in_static(store, vault, auth_server, clock)
    clock.offset = 3700

    with pytest.raises(TokenExpiredError, match="gave no refresh token; sign in again"):
        await OAuthTokenSource(store, vault, connection_id, clock=clock).token()


async def test_token_before_sign_in(store: Store, vault: SecretVault, auth_server: FakeOAuthServer) -> None:
    connection = create_oauth_connection(
        store,
        vault,
        "Never signed in",
        authorization_endpoint=f"{auth_server.base_url}/authorize",
        token_endpoint=f"{auth_server.base_url}/token",
        client_id="someone",
    )
    with pytest.raises(NotSignedInError, match="studio connections login Never signed in"):
        await OAuthTokenSource(store, vault, connection.id).token()


# -- MCP authorization ----------------------------------------------------------------------------


async def call_echo(url: str, auth: httpx2.Auth, text: str) -> str:
    async with (
        httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(10.0)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        result = await client.call_tool("echo", {"text": text})
    return str(result.content[0].text)  # type: ignore[union-attr]


async def test_mcp_server_rejects_call_without_token(mcp_server: ProtectedMcpServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(mcp_server.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 401
    challenge = parse_www_authenticate(response.headers["WWW-Authenticate"])
    assert challenge["resource_metadata"].endswith("/.well-known/oauth-protected-resource/mcp")


async def test_mcp_discovery_registration_and_call(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer, mcp_server: ProtectedMcpServer
) -> None:
    connection = create_oauth_connection(store, vault, "Remote MCP", mcp_server_url=mcp_server.url)
    printed: list[str] = []

    state = await sign_in(store, vault, connection.name, opener=follow_in_browser, on_url=printed.append, timeout=10)

    assert state.flow == "mcp"
    assert state.client_id is not None
    assert state.client_id.startswith("dyn-")
    assert state.resource == mcp_server.url
    assert state.token_endpoint == f"{auth_server.base_url}/token"
    assert state.scopes == ("mcp:tools",)
    authorize = next(r for r in auth_server.requests if r.path == "/authorize")
    assert authorize.params["resource"] == mcp_server.url
    assert authorize.params["scope"] == "mcp:tools"
    assert authorize.params["redirect_uri"] == state.redirect_uri
    assert printed[0].startswith(f"{auth_server.base_url}/authorize?")
    assert [r.path for r in auth_server.requests].count("/register") == 1

    reply = await call_echo(mcp_server.url, http_auth_for_connection(store, vault, connection.id), "over OAuth")

    assert reply == "over OAuth"
    assert mcp_server.calls == 1


async def test_mcp_sign_in_again_reuses_client(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer, mcp_server: ProtectedMcpServer
) -> None:
    connection = create_oauth_connection(store, vault, "Remote MCP", mcp_server_url=mcp_server.url)
    first = await sign_in(store, vault, connection.id, opener=follow_in_browser, timeout=10)
    second = await sign_in(store, vault, connection.id, opener=follow_in_browser, timeout=10)

    assert second.client_id == first.client_id
    assert [r.path for r in auth_server.requests].count("/register") == 1
    assert len(auth_server.token_requests("authorization_code")) == 2


async def test_mcp_call_refreshes_once_after_401(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer, mcp_server: ProtectedMcpServer
) -> None:
    connection = create_oauth_connection(store, vault, "Remote MCP", mcp_server_url=mcp_server.url)
    await sign_in(store, vault, connection.id, opener=follow_in_browser, timeout=10)
    auth_server.revoke_access_tokens()

    reply = await call_echo(mcp_server.url, http_auth_for_connection(store, vault, connection.id), "again")

    assert reply == "again"
    assert len(auth_server.token_requests("refresh_token")) == 1


async def test_mcp_call_refreshes_expired_token(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer, mcp_server: ProtectedMcpServer
) -> None:
    clock = Clock()
    connection = create_oauth_connection(store, vault, "Remote MCP", mcp_server_url=mcp_server.url)
    await sign_in(store, vault, connection.id, opener=follow_in_browser, timeout=10, clock=clock)
    auth_server.advance(3700)
    clock.offset = 3700

    auth = http_auth_for_connection(store, vault, connection.id, clock=clock)
    reply = await call_echo(mcp_server.url, auth, "later")

    assert reply == "later"
    assert len(auth_server.token_requests("refresh_token")) == 1


async def test_discovery_rejects_open_server(store: Store, vault: SecretVault, auth_server: FakeOAuthServer) -> None:
    url = f"{auth_server.base_url}/.well-known/oauth-authorization-server"
    connection = create_oauth_connection(store, vault, "Not protected", mcp_server_url=url)
    with pytest.raises(DiscoveryError, match="does not ask for OAuth sign-in"):
        await sign_in(store, vault, connection.id, opener=follow_in_browser, timeout=10)


async def test_mcp_pre_registered_client_skips_registration(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer, mcp_server: ProtectedMcpServer
) -> None:
    client = auth_server.add_client()
    connection = create_oauth_connection(
        store, vault, "Remote MCP", mcp_server_url=mcp_server.url, client_id=client.client_id
    )

    state = await sign_in(store, vault, connection.id, opener=follow_in_browser, timeout=10)
    reply = await call_echo(mcp_server.url, http_auth_for_connection(store, vault, connection.id), "known client")

    assert state.client_id == client.client_id
    assert [r.path for r in auth_server.requests].count("/register") == 0
    assert reply == "known client"


@pytest.mark.parametrize("claimed", ["http://127.0.0.1:9/mcp", "{origin}/other"])
async def test_discovery_rejects_foreign_resource(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer, claimed: str
) -> None:
    server = ForeignResourceServer(auth_server, claimed)
    server.start()
    try:
        connection = create_oauth_connection(store, vault, "Foreign", mcp_server_url=server.url)
        with pytest.raises(DiscoveryError, match="names another resource"):
            await sign_in(store, vault, connection.id, opener=follow_in_browser, timeout=10)
    finally:
        server.close()

    assert [r.path for r in auth_server.requests] == []


def test_discovery_accepts_origin_resource() -> None:
    from studio.secrets.oauth_discovery import _check_resource

    _check_resource("http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000")
    _check_resource("http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/mcp/")
    with pytest.raises(DiscoveryError):
        _check_resource("http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/mcpx")


async def test_refresh_rotated_by_other_process(
    store: Store, vault: SecretVault, auth_server: FakeOAuthServer
) -> None:
    clock = Clock()
    connection_id = await signed_in_static(store, vault, auth_server, clock)
    first = OAuthTokenSource(store, vault, connection_id, clock=clock)
    second = OAuthTokenSource(store, vault, connection_id, clock=clock)
    signed_in_token = await second.token()
    clock.offset = 3600 - 30

    renewed = await first.token()
    seen_by_second = await second.token()

    assert renewed != signed_in_token
    assert seen_by_second == renewed
    assert len(auth_server.token_requests("refresh_token")) == 2, "the second source tried its stale token once"
