"""MCP steps on a remote server that requires OAuth tokens: renewal between steps, and auth failures named."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import httpx
import keyring
import pytest

from studio.engine import ExecutorServices
from studio.engine.executors.mcp import McpAuthError, McpServerSpec, McpSessionPool
from studio.mcp.catalog import add_entry
from studio.mcp.instances import Binding, create_instance
from studio.mcp.resolve import connection_auth_factory, spec_for_instance
from studio.secrets import SecretVault, create_connection, open_vault
from studio.secrets.oauth import create_oauth_connection, sign_in
from studio.store import Store
from tests.conftest import EngineFactory, build_workflow
from tests.fakes.oauth_server import FakeOAuthServer, ProtectedMcpServer, oauth_server, protected_mcp_server
from tests.secrets.keyring_backends import MemoryKeyring

# The async tests share the module's event loop, as the engine fixtures of tests.conftest need.
module_loop = pytest.mark.asyncio(loop_scope="module")

TOKEN_LIFETIME_S = 3600.0


class Clock:
    """A client clock the test moves; it starts at the real time, as the fake server's clock does."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """An in-memory keychain installed as keyring's choice, which spec_for_instance opens."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def vault(store: Store, memory_keyring: MemoryKeyring) -> SecretVault:
    return open_vault(store.workspace_slug(), environ={})


@pytest.fixture
def auth_server() -> Iterator[FakeOAuthServer]:
    with oauth_server(token_lifetime=TOKEN_LIFETIME_S) as server:
        yield server


@pytest.fixture
def mcp_server(auth_server: FakeOAuthServer) -> Iterator[ProtectedMcpServer]:
    with protected_mcp_server(auth_server) as server:
        yield server


async def follow_in_browser(url: str) -> httpx.Response:
    """Play the browser: follow the authorization URL and its redirect to the loopback callback."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=10.0) as client:
        return await client.get(url)


async def signed_in_instance(store: Store, vault: SecretVault, mcp_server: ProtectedMcpServer, clock: Clock) -> str:
    """Sign an ``oauth2`` connection in to the protected server and bind it to a new instance's Authorization."""
    connection = create_oauth_connection(store, vault, "Remote sign-in", mcp_server_url=mcp_server.url)
    await sign_in(store, vault, connection.id, opener=follow_in_browser, timeout=10, clock=clock)
    entry = add_entry(store, "protected", "http", url=mcp_server.url)
    create_instance(store, entry, name="protected", bindings=[Binding("header", "Authorization", connection.id)])
    return connection.id


def echo_step(step_id: str, text: str) -> dict[str, object]:
    return {
        "id": step_id,
        "type": "mcp_call",
        "config": {"instance_id": "protected", "tool": "echo", "arguments": {"text": text}},
    }


async def test_oauth_binding_names_connection_in_spec(
    store: Store, vault: SecretVault, mcp_server: ProtectedMcpServer
) -> None:
    connection_id = await signed_in_instance(store, vault, mcp_server, Clock())

    spec = spec_for_instance(store, "protected", vault=vault)

    assert spec.auth_connection_id == connection_id
    assert spec.credential_source == "Remote sign-in"
    assert spec.headers is None
    assert dataclasses.replace(spec, auth_connection_id="another-connection").key != spec.key


@module_loop
async def test_token_renewed_between_steps(
    make_engine: EngineFactory,
    store: Store,
    vault: SecretVault,
    auth_server: FakeOAuthServer,
    mcp_server: ProtectedMcpServer,
) -> None:
    clock = Clock()
    await signed_in_instance(store, vault, mcp_server, clock)
    services = ExecutorServices(store, environ={}, mcp_auth=connection_auth_factory(store, vault, clock=clock))
    studio, _ = await make_engine(services=services)
    try:
        first = await studio.wait(await studio.run_workflow(build_workflow([echo_step("before", "one")])))
        refreshes_before = len(auth_server.token_requests("refresh_token"))
        # The first access token expires at the server and is due at the client.
        auth_server.advance(TOKEN_LIFETIME_S + 100)
        clock.offset = TOKEN_LIFETIME_S + 100
        second = await studio.wait(await studio.run_workflow(build_workflow([echo_step("after", "two")])))
    finally:
        await services.aclose()

    assert first.status == "completed", first.error
    assert second.status == "completed", second.error
    assert first.result == {"before": {"result": "one"}}
    assert second.result == {"after": {"result": "two"}}
    assert refreshes_before == 0
    assert len(auth_server.token_requests("refresh_token")) == 1
    assert mcp_server.calls == 2


@module_loop
async def test_revoked_token_renewed_after_401(
    make_engine: EngineFactory,
    store: Store,
    vault: SecretVault,
    auth_server: FakeOAuthServer,
    mcp_server: ProtectedMcpServer,
) -> None:
    clock = Clock()
    await signed_in_instance(store, vault, mcp_server, clock)
    services = ExecutorServices(store, environ={}, mcp_auth=connection_auth_factory(store, vault, clock=clock))
    studio, _ = await make_engine(services=services)
    try:
        first = await studio.wait(await studio.run_workflow(build_workflow([echo_step("before", "one")])))
        auth_server.revoke_access_tokens()
        second = await studio.wait(await studio.run_workflow(build_workflow([echo_step("after", "two")])))
    finally:
        await services.aclose()

    assert first.status == "completed", first.error
    assert second.status == "completed", second.error
    assert len(auth_server.token_requests("refresh_token")) == 1


@module_loop
async def test_refused_refresh_names_connection(
    make_engine: EngineFactory,
    store: Store,
    vault: SecretVault,
    auth_server: FakeOAuthServer,
    mcp_server: ProtectedMcpServer,
) -> None:
    clock = Clock()
    await signed_in_instance(store, vault, mcp_server, clock)
    auth_server.refuse_refresh = True
    auth_server.advance(TOKEN_LIFETIME_S + 100)
    clock.offset = TOKEN_LIFETIME_S + 100
    services = ExecutorServices(store, environ={}, mcp_auth=connection_auth_factory(store, vault, clock=clock))
    studio, _ = await make_engine(services=services)
    try:
        summary = await studio.wait(await studio.run_workflow(build_workflow([echo_step("call", "x")])))
    finally:
        await services.aclose()

    assert summary.status == "failed"
    message = str(summary.error)
    assert "Remote sign-in" in message
    assert "sign in again" in message
    assert mcp_server.calls == 0


@module_loop
async def test_rejected_bearer_names_connection(
    make_engine: EngineFactory, store: Store, vault: SecretVault, mcp_server: ProtectedMcpServer
) -> None:
    wrong = "not-a-token-the-server-issued-4410"
    connection = create_connection(store, vault, "stale bearer", "bearer", secret=wrong)
    entry = add_entry(store, "protected", "http", url=mcp_server.url)
    create_instance(store, entry, name="protected", bindings=[Binding("header", "Authorization", connection.id)])
    services = ExecutorServices(store, environ={})
    studio, _ = await make_engine(services=services)
    try:
        summary = await studio.wait(await studio.run_workflow(build_workflow([echo_step("call", "x")])))
    finally:
        await services.aclose()

    assert summary.status == "failed"
    message = str(summary.error)
    assert "401" in message
    assert "connection 'stale bearer'" in message
    assert wrong not in message


async def test_pool_without_auth_factory_names_connection() -> None:
    spec = McpServerSpec(
        transport="http",
        url="http://127.0.0.1:9/mcp",
        name="remote",
        auth_connection_id="c-17",
        credential_source="Remote sign-in",
    )

    async with McpSessionPool() as pool:
        with pytest.raises(McpAuthError) as raised:
            await pool.connection(spec)

    assert "connection 'Remote sign-in'" in str(raised.value)
    assert "without access to the project's connections" in str(raised.value)
