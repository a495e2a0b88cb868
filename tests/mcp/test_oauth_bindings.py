"""OAuth 2 connections bound to MCP instances: the process gets only the access token, sessions renew it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from studio.mcp.catalog import add_entry
from studio.mcp.instances import Binding, create_instance
from studio.mcp.resolve import spec_for_instance
from studio.mcp.session import InstanceSession
from studio.secrets import SecretVault
from studio.secrets.oauth import create_oauth_connection, get_oauth_state, sign_in
from studio.store import Store
from tests.fakes.oauth_server import FakeOAuthServer, ProtectedMcpServer, oauth_server, protected_mcp_server

ECHO_SERVER = Path(__file__).with_name("echo_server.py")


@pytest.fixture
def auth_server() -> Iterator[FakeOAuthServer]:
    with oauth_server() as server:
        yield server


@pytest.fixture
def mcp_server(auth_server: FakeOAuthServer) -> Iterator[ProtectedMcpServer]:
    with protected_mcp_server(auth_server) as server:
        yield server


async def follow_in_browser(url: str) -> httpx.Response:
    """Play the browser: follow the authorization URL and its redirect to the loopback callback."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=10.0) as client:
        return await client.get(url)


async def test_env_binding_passes_access_token_only(
    store: Store, file_vault: SecretVault, auth_server: FakeOAuthServer
) -> None:
    client = auth_server.add_client()
    connection = create_oauth_connection(
        store,
        file_vault,
        "tool sign-in",
        authorization_endpoint=f"{auth_server.base_url}/authorize",
        token_endpoint=f"{auth_server.base_url}/token",
        client_id=client.client_id,
        scopes=["mcp:tools"],
    )
    await sign_in(store, file_vault, connection.id, opener=follow_in_browser, timeout=10)
    assert connection.secret_ref is not None
    record = json.loads(file_vault.get(connection.secret_ref))
    entry = add_entry(store, "echo", "stdio", command=sys.executable, args=[str(ECHO_SERVER)])
    create_instance(store, entry, name="echo", bindings=[Binding("env", "TOOL_TOKEN", connection.id)])
    session = InstanceSession(store, "echo", vault=file_vault)
    try:
        await session.start()
        result = await session.call_tool("env_value", {"name": "TOOL_TOKEN"})
    finally:
        await session.stop()

    assert result.value == {"result": record["access_token"]}
    assert auth_server.verify(record["access_token"]) is not None
    assert record["refresh_token"] not in str(result.value)
    assert "{" not in str(result.value["result"])  # type: ignore[index]


async def test_env_binding_spec_names_connection(
    store: Store, file_vault: SecretVault, auth_server: FakeOAuthServer
) -> None:
    client = auth_server.add_client()
    connection = create_oauth_connection(
        store,
        file_vault,
        "tool sign-in",
        authorization_endpoint=f"{auth_server.base_url}/authorize",
        token_endpoint=f"{auth_server.base_url}/token",
        client_id=client.client_id,
    )
    await sign_in(store, file_vault, connection.id, opener=follow_in_browser, timeout=10)
    entry = add_entry(store, "echo", "stdio", command=sys.executable, args=[str(ECHO_SERVER)])
    create_instance(store, entry, name="echo", bindings=[Binding("env", "TOOL_TOKEN", connection.id)])

    spec = spec_for_instance(store, "echo", vault=file_vault)

    assert spec.credential_source == "tool sign-in"
    assert spec.auth_connection_id is None


async def test_instance_session_renews_on_401(
    store: Store, file_vault: SecretVault, auth_server: FakeOAuthServer, mcp_server: ProtectedMcpServer
) -> None:
    connection = create_oauth_connection(store, file_vault, "remote sign-in", mcp_server_url=mcp_server.url)
    await sign_in(store, file_vault, connection.id, opener=follow_in_browser, timeout=10)
    entry = add_entry(store, "protected", "http", url=mcp_server.url)
    create_instance(store, entry, name="protected", bindings=[Binding("header", "Authorization", connection.id)])
    session = InstanceSession(store, "protected", vault=file_vault)
    try:
        await session.start()
        auth_server.revoke_access_tokens()
        result = await session.call_tool("echo", {"text": "still here"})
    finally:
        await session.stop()

    assert result.value == {"result": "still here"}
    assert len(auth_server.token_requests("refresh_token")) == 1
    state = get_oauth_state(store, connection.id)
    assert state is not None
    assert state.refreshed_at is not None
