"""Tests of ``llm_call`` steps on an OAuth 2 connection: the due token is renewed off the event loop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import keyring
import pytest
import pytest_asyncio

from studio.engine import ExecutorServices
from studio.secrets import SecretVault, open_vault
from studio.secrets.oauth import create_oauth_connection, sign_in
from studio.store import Store
from tests.conftest import EngineFactory, build_workflow
from tests.fakes.oauth_server import FakeOAuthServer, oauth_server
from tests.fakes.openai_server import TextReply, openai_server
from tests.secrets.keyring_backends import MemoryKeyring

# The async tests share the module's event loop, as the engine fixtures of tests.conftest need.
module_loop = pytest.mark.asyncio(loop_scope="module")

# Shorter than the 60 s refresh margin, so every use of the token renews it first.
SHORT_LIFETIME_S = 30.0


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """An in-memory keychain installed as keyring's choice, which the engine's vault opens."""
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
    with oauth_server(token_lifetime=SHORT_LIFETIME_S) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def services(store: Store) -> AsyncIterator[ExecutorServices]:
    created = ExecutorServices(store, environ={})
    yield created
    await created.aclose()


async def follow_in_browser(url: str) -> httpx.Response:
    """Play the browser: follow the authorization URL and its redirect to the loopback callback."""
    async with httpx.AsyncClient(follow_redirects=True, timeout=10.0) as client:
        return await client.get(url)


@module_loop
async def test_due_token_renewed_off_loop(
    make_engine: EngineFactory,
    store: Store,
    vault: SecretVault,
    auth_server: FakeOAuthServer,
    services: ExecutorServices,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = auth_server.add_client()
    with openai_server() as llm:
        connection = create_oauth_connection(
            store,
            vault,
            "gateway sign-in",
            authorization_endpoint=f"{auth_server.base_url}/authorize",
            token_endpoint=f"{auth_server.base_url}/token",
            client_id=client.client_id,
            provider="openai",
            base_url=llm.base_url,
        )
        await sign_in(store, vault, connection.id, opener=follow_in_browser, timeout=10, clock=time.time)
        llm.script(TextReply("Blue"))
        studio, _ = await make_engine(services=services)
        step = {
            "id": "ask",
            "type": "llm_call",
            "config": {"connection_id": connection.id, "model": "gpt-x", "prompt": "Name a colour."},
        }

        with caplog.at_level(logging.INFO, logger="studio.secrets.oauth"):
            run_id = await studio.run_workflow(build_workflow([step]))
            summary = await studio.wait(run_id)

        sent_authorization = llm.chat_requests[-1].headers["authorization"]

    assert summary.status == "completed", summary.error
    assert len(auth_server.token_requests("refresh_token")) == 1
    token = sent_authorization.removeprefix("Bearer ")
    assert auth_server.verify(token) is not None
    renewals = [record for record in caplog.records if record.getMessage().startswith("Renewed the access token")]
    assert len(renewals) == 1
    assert renewals[0].thread != threading.main_thread().ident, "the token was renewed on the event loop's thread"
