"""OAuth and bearer secrets through the real engine: used for requests, absent from everything the studio keeps."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from studio.engine import Engine, ExecutorServices, RunSummary
from studio.model.shared_graph import LocalConnection, export_shared_graph
from studio.model.workflow import Workflow
from studio.secrets import SecretVault, create_connection, open_vault
from studio.secrets.oauth import create_oauth_connection, sign_in
from studio.store import Store
from tests.conftest import EngineFactory, build_workflow
from tests.fakes.oauth_server import FakeOAuthServer, oauth_server
from tests.fakes.openai_server import FakeOpenAIServer, TextReply, openai_server
from tests.secrets.keyring_backends import MemoryKeyring

pytestmark = pytest.mark.asyncio(loop_scope="module")

BEARER = "sk-bearer-leak-canary-Qm3Vx8"


@pytest.fixture
def oauth_api() -> Iterator[FakeOpenAIServer]:
    with openai_server() as server:
        yield server


@pytest.fixture
def bearer_api() -> Iterator[FakeOpenAIServer]:
    with openai_server(api_key=BEARER) as server:
        yield server


@pytest.fixture
def auth_server() -> Iterator[FakeOAuthServer]:
    with oauth_server() as server:
        yield server


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


async def follow_in_browser(url: str) -> httpx.Response:
    async with httpx.AsyncClient(follow_redirects=True, timeout=10.0) as client:
        return await client.get(url)


def llm_step(step_id: str, connection_id: str) -> dict[str, Any]:
    return {"id": step_id, "type": "llm_call", "config": {"connection_id": connection_id, "model": "m", "prompt": "Hi"}}


async def signed_in_connection(store: Store, vault: SecretVault, server: FakeOAuthServer, base_url: str) -> str:
    client = server.add_client()
    connection = create_oauth_connection(
        store,
        vault,
        "OAuth LLM",
        authorization_endpoint=f"{server.base_url}/authorize",
        token_endpoint=f"{server.base_url}/token",
        client_id=client.client_id,
        provider="openai",
        base_url=base_url,
    )
    await sign_in(store, vault, connection.id, opener=follow_in_browser, timeout=10)
    return connection.id


def kept_text(store: Store, summary: RunSummary, caplog: pytest.LogCaptureFixture, export: str) -> dict[str, str]:
    database = b"".join(path.read_bytes() for path in Path(str(store.path)).parent.glob("studio.db*"))
    return {
        "database files": database.decode("latin-1"),
        "events": json.dumps(store.events(summary.run_id), default=str),
        "run record": repr(store.get_run(summary.run_id)),
        "step runs": repr(store.step_runs(summary.run_id)),
        "logs": caplog.text,
        "run summary and errors": repr(summary),
        "shared graph export": export,
    }


def export_text(store: Store, workflow: Workflow) -> str:
    connections = {
        row["id"]: LocalConnection(id=row["id"], name=row["name"], kind=row["kind"], provider=row["provider"])
        for row in store.list_connections()
    }
    return export_shared_graph(workflow, {}, connections).model_dump_json()


def issued(server: FakeOAuthServer) -> list[str]:
    return [*server.access_tokens, *server.refresh_tokens]


async def test_oauth_and_bearer_secrets_stay_out(
    make_engine: EngineFactory,
    store: Store,
    oauth_api: FakeOpenAIServer,
    bearer_api: FakeOpenAIServer,
    auth_server: FakeOAuthServer,
    memory_keyring: MemoryKeyring,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    vault = open_vault(store.workspace_slug(), environ={})
    oauth_id = await signed_in_connection(store, vault, auth_server, oauth_api.base_url)
    bearer = create_connection(
        store, vault, "Bearer LLM", "bearer", provider="openai", base_url=bearer_api.base_url, secret=BEARER
    )
    (access_token,) = auth_server.access_tokens
    oauth_api.require_api_key(access_token)
    oauth_api.script(TextReply("over OAuth"))
    bearer_api.script(TextReply("over bearer"))
    workflow = build_workflow([llm_step("oauth", oauth_id), llm_step("bearer", bearer.id)], name="Two keys")

    _, summary = await run_with_store(make_engine, store, workflow)

    assert summary.status == "completed", summary.error
    assert summary.result == {"oauth": "over OAuth", "bearer": "over bearer"}
    assert oauth_api.chat_requests[-1].headers["authorization"] == f"Bearer {access_token}"
    assert bearer_api.chat_requests[-1].headers["authorization"] == f"Bearer {BEARER}"
    export = export_text(store, workflow)
    assert "oauth-llm" in export, "the export must name the OAuth connection's slot"
    places = kept_text(store, summary, debug_logs, export)
    for secret in [*issued(auth_server), BEARER]:
        for place, text in places.items():
            assert secret not in text, f"a secret leaked into the {place}"


async def test_refused_refresh_fails_step_without_tokens(
    make_engine: EngineFactory,
    store: Store,
    oauth_api: FakeOpenAIServer,
    auth_server: FakeOAuthServer,
    memory_keyring: MemoryKeyring,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    # Tokens that live shorter than the renewal margin are due at once, so the run must renew them.
    auth_server.token_lifetime = 30
    vault = open_vault(store.workspace_slug(), environ={})
    oauth_id = await signed_in_connection(store, vault, auth_server, oauth_api.base_url)
    before = issued(auth_server)
    auth_server.refuse_refresh = True
    requests_before = len(oauth_api.requests)
    workflow = build_workflow([llm_step("oauth", oauth_id)], name="Expired")

    _, summary = await run_with_store(make_engine, store, workflow)

    assert summary.status == "failed"
    assert isinstance(summary.error, dict)
    message = str(summary.error["message"])
    assert "could not be renewed" in message
    assert "sign in again" in message
    assert len(oauth_api.requests) == requests_before, "no request goes out with a token that is due"
    assert len(auth_server.token_requests("refresh_token")) == 1
    places = kept_text(store, summary, debug_logs, export_text(store, workflow))
    for secret in before:
        for place, text in places.items():
            assert secret not in text, f"a token leaked into the {place}"


async def run_with_store(make_engine: EngineFactory, store: Store, workflow: Workflow) -> tuple[Engine, RunSummary]:
    studio, _ = await make_engine(services=ExecutorServices(store, environ={}))
    summary = await studio.wait(await studio.run_workflow(workflow))
    return studio, summary
