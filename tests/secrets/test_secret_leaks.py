"""Connection secrets through the real engine: sent to the LLM server, and found nowhere in what the studio keeps."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from studio.engine import Engine, ExecutorServices, RunSummary
from studio.secrets import Connection, SecretVault, create_connection, open_vault, rotate_secret
from studio.store import Store
from tests.conftest import EngineFactory, build_workflow
from tests.fakes.openai_server import FakeOpenAIServer, TextReply, openai_server
from tests.secrets.keyring_backends import MemoryKeyring

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "sk-leak-canary-5vT8qRz1Kx3N"
WRONG_SECRET = "sk-wrong-canary-9pW2mY7cJ4"


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeOpenAIServer]:
    with openai_server() as server:
        yield server


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def llm_step(connection_id: str) -> dict[str, Any]:
    config = {"connection_id": connection_id, "model": "fake-model", "prompt": "Say hello"}
    return {"id": "ask", "type": "llm_call", "config": config}


async def run_with_connection(
    make_engine: EngineFactory, store: Store, connection: Connection, environ: dict[str, str]
) -> tuple[Engine, RunSummary]:
    services = ExecutorServices(store, environ=environ)
    studio, _ = await make_engine(services=services)
    summary = await studio.wait(await studio.run_workflow(build_workflow([llm_step(connection.id)])))
    return studio, summary


def kept_text(store: Store, run_id: str, caplog: pytest.LogCaptureFixture, summary: RunSummary) -> dict[str, str]:
    """Everything the studio kept or reported about a run, as text per place."""
    database = b"".join(path.read_bytes() for path in Path(str(store.path)).parent.glob("studio.db*"))
    return {
        "database files": database.decode("latin-1"),
        "events": json.dumps(store.events(run_id), default=str),
        "step runs": repr(store.step_runs(run_id)),
        "usage": json.dumps(store.usage(run_id), default=str),
        "logs": caplog.text,
        "run summary": repr(summary),
    }


def assert_nowhere(secret: str, places: dict[str, str]) -> None:
    for place, text in places.items():
        assert secret not in text, f"the secret leaked into the {place}"


async def test_keychain_secret_reaches_server_only(
    make_engine: EngineFactory,
    store: Store,
    llm_server: FakeOpenAIServer,
    memory_keyring: MemoryKeyring,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    vault = open_vault(store.workspace_slug(), environ={})
    connection = create_connection(
        store, vault, "Fake OpenAI", "api_key", provider="openai", base_url=llm_server.base_url, secret=SECRET
    )
    llm_server.require_api_key(SECRET)
    llm_server.script(TextReply("Hello with a key"))

    _, summary = await run_with_connection(make_engine, store, connection, {})

    assert summary.status == "completed", summary.error
    assert summary.result == {"ask": "Hello with a key"}
    assert llm_server.chat_requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert memory_keyring.values == {("workflow-studio/local", f"connection/{connection.id}"): SECRET}
    places = kept_text(store, summary.run_id, debug_logs, summary)
    assert connection.id in places["database files"], "the scan must see the connection record"
    assert_nowhere(SECRET, places)


async def test_rejected_secret_stays_hidden(
    make_engine: EngineFactory,
    store: Store,
    llm_server: FakeOpenAIServer,
    memory_keyring: MemoryKeyring,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    vault = open_vault(store.workspace_slug(), environ={})
    connection = create_connection(
        store, vault, "Fake OpenAI", "bearer", provider="openai", base_url=llm_server.base_url, secret=SECRET
    )
    rotate_secret(store, vault, connection.id, WRONG_SECRET)
    llm_server.require_api_key(SECRET)

    _, summary = await run_with_connection(make_engine, store, connection, {})

    assert summary.status == "failed"
    assert "401" in str(summary.error)
    assert llm_server.chat_requests[-1].headers["authorization"] == f"Bearer {WRONG_SECRET}"
    places = kept_text(store, summary.run_id, debug_logs, summary)
    assert_nowhere(WRONG_SECRET, places)
    assert_nowhere(SECRET, places)


async def test_encrypted_file_secret_reaches_server(
    make_engine: EngineFactory,
    store: Store,
    llm_server: FakeOpenAIServer,
    no_keyring: object,
    file_environ: dict[str, str],
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    vault = open_vault(store.workspace_slug(), environ=file_environ)
    connection = create_connection(
        store,
        vault,
        "Basic gateway",
        "api_key",
        base_url=llm_server.base_url,
        secret=SECRET,
        settings={"header": "Authorization"},
    )
    llm_server.require_api_key(SECRET)
    llm_server.script(TextReply("Hello from the file"))

    _, summary = await run_with_connection(make_engine, store, connection, file_environ)

    assert vault.is_encrypted_fallback
    assert summary.status == "completed", summary.error
    assert summary.result == {"ask": "Hello from the file"}
    places = kept_text(store, summary.run_id, debug_logs, summary)
    places["secrets file"] = Path(file_environ["STUDIO_SECRETS_FILE"]).read_bytes().decode("latin-1")
    assert_nowhere(SECRET, places)


async def test_missing_secret_fails_step(
    make_engine: EngineFactory, store: Store, llm_server: FakeOpenAIServer, memory_keyring: MemoryKeyring
) -> None:
    vault = SecretVault(store.workspace_slug(), memory_keyring)
    connection = create_connection(store, vault, "Forgotten", "bearer", base_url=llm_server.base_url, secret=SECRET)
    memory_keyring.values.clear()
    requests_before = len(llm_server.requests)

    _, summary = await run_with_connection(make_engine, store, connection, {})

    assert summary.status == "failed"
    error = summary.error
    assert isinstance(error, dict)
    assert error["kind"] == "invalid_input"
    assert "the secret of connection 'Forgotten' is missing" in str(error["message"])
    assert len(llm_server.requests) == requests_before, "no request goes out without the secret"


async def test_no_vault_fails_step(
    make_engine: EngineFactory,
    store: Store,
    llm_server: FakeOpenAIServer,
    no_keyring: object,
    tmp_path: Path,
) -> None:
    keychain = MemoryKeyring()
    connection = create_connection(
        store,
        SecretVault(store.workspace_slug(), keychain),
        "Gateway",
        "bearer",
        base_url=llm_server.base_url,
        secret=SECRET,
    )

    _, summary = await run_with_connection(
        make_engine, store, connection, {"STUDIO_SECRETS_FILE": str(tmp_path / "none.cfg")}
    )

    assert summary.status == "failed"
    assert isinstance(summary.error, dict)
    message = str(summary.error["message"])
    assert "no OS keychain is available" in message
    assert "STUDIO_SECRETS_PASSPHRASE" in message
