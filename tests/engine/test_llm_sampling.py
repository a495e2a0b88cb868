"""Tests of default LLM resolution and of MCP sampling served by it, against the loopback fakes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from studio.engine import Engine, ExecutorServices
from studio.engine.executors.llm_default import (
    default_connection,
    resolve_default_llm,
    resolve_step_llm,
    set_default_connection,
)
from studio.engine.executors.llm_errors import LlmConfigError, LlmError
from studio.engine.executors.llm_sampling import (
    SamplingMessage,
    SamplingRequest,
    sample_with_default_llm,
)
from studio.llm_local import (
    LOCAL_MODEL_NAME,
    LocalModelManager,
    LocalModelNotInstalledError,
    find_install,
    shared_manager,
)
from studio.mcp.catalog import add_entry
from studio.mcp.instances import create_instance
from studio.secrets import create_connection
from studio.secrets.vault import SecretVault, open_vault
from studio.store import Store
from tests.conftest import EventLog, build_workflow
from tests.engine.mcp_fixtures import EVERYTHING_ENTRY, MISSING_DEPS_HINT
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.openai_server import FakeOpenAIServer, TextReply, html_page, openai_server
from tests.secrets.keyring_backends import MemoryKeyring

CONVERSATION = (
    SamplingMessage(role="user", text="My name is Ada."),
    SamplingMessage(role="assistant", text="Hello Ada."),
    SamplingMessage(role="user", text="What is my name?"),
)


@pytest.fixture
def vault(store: Store) -> SecretVault:
    """An in-memory vault: the connections here have kind "none", so no secret is ever stored or read."""
    return open_vault(store.workspace_slug(), backend=MemoryKeyring())


@pytest.fixture
def no_local_model(tmp_path: Path) -> LocalModelManager:
    """A local model manager whose install is missing, so a fallback to it fails with the install hint."""
    return LocalModelManager(environ={"STUDIO_LLAMA_ENV": str(tmp_path / "no-llama")})


@pytest.fixture
async def services(store: Store) -> AsyncIterator[ExecutorServices]:
    created = ExecutorServices(store, environ={}, sampling=sample_with_default_llm)
    yield created
    await created.aclose()


def add_default(store: Store, vault: SecretVault, server_url: str, *, provider: str = "openai", **settings: Any) -> str:
    connection = create_connection(store, vault, f"{provider} default", "none", provider=provider, base_url=server_url)
    set_default_connection(store, connection.id, default_model=settings.get("default_model"))
    return connection.id


def sampling_request(**options: Any) -> SamplingRequest:
    values: dict[str, Any] = {
        "server": "everything",
        "messages": CONVERSATION,
        "system_prompt": "Answer in one word.",
        "max_tokens": 50,
    }
    values.update(options)
    return SamplingRequest(**values)


# --- sampling through the default connection ------------------------------------------------------------


async def test_sampling_sends_conversation_as_turns(
    services: ExecutorServices, store: Store, vault: SecretVault
) -> None:
    with openai_server() as server:
        add_default(store, vault, server.base_url, default_model="gpt-default")
        server.script(TextReply("Ada", usage=(21, 1)))

        response = await services.sampling(
            services, sampling_request(temperature=0.2, stop_sequences=("\n",), max_tokens=20)
        )

        body = server.chat_requests[-1].json

    assert body["model"] == "gpt-default"
    assert body["messages"] == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": "What is my name?"},
    ]
    assert body["max_tokens"] == 20
    assert body["temperature"] == 0.2
    assert body["stop"] == ["\n"]
    assert response.text == "Ada"
    assert response.model == "gpt-default"
    assert response.stop_reason == "endTurn"
    assert (response.prompt_tokens, response.completion_tokens) == (21, 1)


async def test_sampling_cut_off_is_max_tokens(services: ExecutorServices, store: Store, vault: SecretVault) -> None:
    with openai_server() as server:
        add_default(store, vault, server.base_url, default_model="gpt-default")
        server.script(TextReply("A long", finish_reason="length"))

        response = await sample_with_default_llm(services, sampling_request(max_tokens=2))

    assert response.stop_reason == "maxTokens"


async def test_sampling_failure_names_connection(
    services: ExecutorServices, store: Store, vault: SecretVault
) -> None:
    with openai_server() as server:
        add_default(store, vault, server.base_url, default_model="gpt-default")
        server.script(html_page(status=404))

        with pytest.raises(LlmError) as caught:
            await sample_with_default_llm(services, sampling_request())

    assert caught.value.message.startswith("default LLM connection 'openai default': LLM server at ")
    assert str(caught.value) == caught.value.message


async def test_hint_picks_listed_model(services: ExecutorServices, store: Store, vault: SecretVault) -> None:
    with openai_server(models=("gpt-small-2026", "gpt-large-2026")) as server:
        add_default(store, vault, server.base_url, default_model="gpt-small-2026")

        response = await sample_with_default_llm(services, sampling_request(model_hints=("claude", "LARGE")))

        sent_model = server.chat_requests[-1].json["model"]
        paths = [request.path for request in server.requests]

    assert sent_model == "gpt-large-2026"
    assert response.model == "gpt-large-2026"
    assert paths == ["/v1/models", "/v1/chat/completions"]


async def test_unmatched_hint_uses_default_model(services: ExecutorServices, store: Store, vault: SecretVault) -> None:
    with openai_server(models=("gpt-only",)) as server:
        add_default(store, vault, server.base_url, default_model="gpt-only")

        await sample_with_default_llm(services, sampling_request(model_hints=("sonnet",)))

        sent_model = server.chat_requests[-1].json["model"]

    assert sent_model == "gpt-only"


async def test_anthropic_default_connection(services: ExecutorServices, store: Store, vault: SecretVault) -> None:
    with anthropic_server(models=("claude-fake",)) as server:
        add_default(store, vault, server.base_url, provider="anthropic", default_model="claude-fake")
        server.script(TextReply("Ada", usage=(30, 2)))

        response = await sample_with_default_llm(services, sampling_request())

        body = server.chat_requests[-1].json

    assert body["system"] == "Answer in one word."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert response.text == "Ada"
    assert (response.prompt_tokens, response.completion_tokens) == (30, 2)


# --- sampling through the environment and the local model -----------------------------------------------


async def test_environment_endpoint_with_sampling_model(store: Store) -> None:
    with openai_server() as server:
        environ = {"OPENAI_BASE_URL": server.base_url, "STUDIO_SAMPLING_MODEL": "sampler-model"}
        services = ExecutorServices(store, environ=environ)

        response = await sample_with_default_llm(services, sampling_request(model_hints=("ignored",)))
        await services.aclose()

        sent_model = server.chat_requests[-1].json["model"]

    assert sent_model == "sampler-model"
    assert response.text == "echo: What is my name?"


async def test_environment_endpoint_uses_first_hint(store: Store) -> None:
    with openai_server(models=("other",)) as server:
        services = ExecutorServices(store, environ={"OPENAI_BASE_URL": server.base_url})

        await sample_with_default_llm(services, sampling_request(model_hints=("", "hinted-model")))
        await services.aclose()

        sent_model = server.chat_requests[-1].json["model"]

    assert sent_model == "hinted-model"


async def test_environment_endpoint_without_model_fails(store: Store) -> None:
    with openai_server() as server:
        services = ExecutorServices(store, environ={"OPENAI_BASE_URL": server.base_url})

        with pytest.raises(LlmConfigError) as caught:
            await sample_with_default_llm(services, sampling_request())
        await services.aclose()

        chat_count = len(server.chat_requests)

    assert "set STUDIO_SAMPLING_MODEL" in caught.value.message
    assert chat_count == 0


async def test_nothing_configured_names_install(services: ExecutorServices, no_local_model: LocalModelManager) -> None:
    with pytest.raises(LlmConfigError) as caught:
        await sample_with_default_llm(services, sampling_request(), manager=no_local_model)

    assert "no LLM is configured" in caught.value.message
    assert "tools/install-local-model.sh" in caught.value.message


async def test_request_without_messages_rejected(services: ExecutorServices, store: Store, vault: SecretVault) -> None:
    with openai_server() as server:
        add_default(store, vault, server.base_url, default_model="gpt-default")

        with pytest.raises(LlmConfigError) as caught:
            await sample_with_default_llm(services, sampling_request(messages=()))

        chat_count = len(server.chat_requests)

    assert "the sampling request of MCP server everything has no messages" in caught.value.message
    assert chat_count == 0


# --- the default connection setting ---------------------------------------------------------------------


def test_setting_default_moves_the_mark(store: Store, vault: SecretVault) -> None:
    first = create_connection(store, vault, "First", "none", provider="openai", base_url="http://127.0.0.1:9/v1")
    second = create_connection(store, vault, "Second", "none", provider="ollama", base_url="http://127.0.0.1:9")

    set_default_connection(store, first.id, default_model="m1")
    marked_first = default_connection(store)
    set_default_connection(store, second.id)
    marked_second = default_connection(store)
    set_default_connection(store, None)
    marked_none = default_connection(store)

    assert marked_first is not None and marked_first["id"] == first.id
    assert marked_first["settings"] == {"default": True, "default_model": "m1"}
    assert marked_second is not None and marked_second["id"] == second.id
    assert store.get_connection(first.id)["settings"] == {"default_model": "m1"}  # type: ignore[index]
    assert marked_none is None


def test_two_marked_connections_rejected(store: Store, vault: SecretVault) -> None:
    for name in ("One", "Two"):
        create_connection(
            store, vault, name, "none", provider="openai", base_url="http://127.0.0.1:9/v1", settings={"default": True}
        )

    with pytest.raises(LlmConfigError) as caught:
        default_connection(store)

    assert "connections 'One', 'Two' are all marked" in caught.value.message


@pytest.mark.parametrize(
    ("provider", "expected"),
    [("github", "has provider 'github'"), (None, "has provider None")],
)
def test_default_needs_llm_provider(store: Store, vault: SecretVault, provider: str | None, expected: str) -> None:
    connection = create_connection(store, vault, "Other", "none", provider=provider, base_url="https://example.test")

    with pytest.raises(LlmConfigError) as caught:
        set_default_connection(store, connection.id)

    assert expected in caught.value.message


def test_default_unknown_connection(store: Store) -> None:
    with pytest.raises(LlmConfigError) as caught:
        set_default_connection(store, "0123abcd")

    assert "connection '0123abcd' was not found" in caught.value.message


async def test_default_without_model_rejected(services: ExecutorServices, store: Store, vault: SecretVault) -> None:
    add_default(store, vault, "http://127.0.0.1:9/v1")

    with pytest.raises(LlmConfigError) as caught:
        await resolve_default_llm(services)

    assert "names no model; set its settings.default_model" in caught.value.message


# --- llm_call steps without a connection ----------------------------------------------------------------


async def test_step_environment_before_default(store: Store, vault: SecretVault) -> None:
    add_default(store, vault, "http://127.0.0.1:9/v1", default_model="m-default")
    services = ExecutorServices(store, environ={"OPENAI_BASE_URL": "http://127.0.0.1:8/v1"})

    resolved = await resolve_step_llm(services, {"model": "step-model"})
    await services.aclose()

    assert resolved.source == "environment"
    assert resolved.endpoint.base_url == "http://127.0.0.1:8/v1"
    assert resolved.model == "step-model"


async def test_step_uses_default_connection(services: ExecutorServices, store: Store, vault: SecretVault) -> None:
    add_default(store, vault, "http://127.0.0.1:9", provider="ollama", default_model="llama3.2")

    named = await resolve_step_llm(services, {"model": "qwen3"})
    unnamed = await resolve_step_llm(services, {"model": ""})

    assert named.source == "connection"
    assert named.endpoint.provider == "ollama"
    assert named.model == "qwen3"
    assert unnamed.model == "llama3.2"
    assert unnamed.description == "connection 'ollama default'"


async def test_step_connection_id_wins(
    services: ExecutorServices, store: Store, vault: SecretVault, no_local_model: LocalModelManager
) -> None:
    add_default(store, vault, "http://127.0.0.1:9/v1", default_model="m-default")
    chosen = create_connection(store, vault, "Chosen", "none", provider="openai", base_url="http://127.0.0.1:7/v1")

    resolved = await resolve_step_llm(services, {"connection_id": chosen.id, "model": "m"}, manager=no_local_model)

    assert resolved.source == "connection"
    assert resolved.endpoint.base_url == "http://127.0.0.1:7/v1"


async def test_anthropic_step_without_setup_fails(
    services: ExecutorServices, no_local_model: LocalModelManager
) -> None:
    with pytest.raises(LlmConfigError) as caught:
        await resolve_step_llm(services, {"provider": "anthropic", "model": "claude"}, manager=no_local_model)

    assert "no LLM endpoint is configured for provider 'anthropic'" in caught.value.message
    assert "ANTHROPIC_API_KEY" in caught.value.message
    assert "mark a connection as the project's default" in caught.value.message


async def test_default_server_serves_step(services: ExecutorServices, store: Store, vault: SecretVault) -> None:
    server: FakeOpenAIServer
    with openai_server(models=("gpt-default",)) as server:
        add_default(store, vault, server.base_url, default_model="gpt-default")

        resolved = await resolve_step_llm(services, {"model": ""})

    assert resolved.endpoint.base_url == server.base_url
    assert resolved.endpoint.provider == "openai"


# --- end to end: a real MCP server asks for sampling during a step --------------------------------------


async def _everything_studio(store: Store, tmp_path: Path) -> tuple[Engine, EventLog, str]:
    """Return an engine whose services sample with the default LLM, and an instance of server-everything."""
    if not EVERYTHING_ENTRY.exists():
        pytest.fail(f"{EVERYTHING_ENTRY} is missing; {MISSING_DEPS_HINT}")
    environ = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", str(tmp_path))}
    entry = add_entry(store, "everything", "stdio", command="node", args=[str(EVERYTHING_ENTRY), "stdio"])
    instance = create_instance(store, entry, name="everything-sampling", allow_sampling=True)
    services = ExecutorServices(store, environ=environ, project_root=tmp_path, sampling=sample_with_default_llm)
    engine = Engine(store, services=services)
    log = EventLog()
    engine.add_listener(log)
    return engine, log, instance.id


def _sampling_step(instance_id: str) -> dict[str, Any]:
    arguments = {"prompt": "what is 2+2?", "maxTokens": 8}
    config = {"instance_id": instance_id, "tool": "trigger-sampling-request", "arguments": arguments}
    return {"id": "ask", "type": "mcp_call", "config": config}


def _sampling_usage(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    rows = [row for row in store.usage(run_id) if (row.get("detail") or {}).get("source") == "mcp_sampling"]
    return {row["kind"]: row for row in rows}


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_step_sampling_uses_default_connection(store: Store, vault: SecretVault, tmp_path: Path) -> None:
    with openai_server(models=("sampler-model",)) as server:
        add_default(store, vault, server.base_url, default_model="sampler-model")
        server.script(TextReply("the sampled answer", usage=(11, 3)))
        engine, _log, instance_id = await _everything_studio(store, tmp_path)
        try:
            run_id = await engine.run_workflow(build_workflow([_sampling_step(instance_id)]))
            summary = await engine.wait(run_id)
        finally:
            await engine.aclose()

        request = server.chat_requests[0].json

    assert summary.status == "completed", summary.error
    assert "the sampled answer" in str(summary.result)
    assert request["model"] == "sampler-model"
    assert request["messages"][-1]["role"] == "user"
    assert "what is 2+2?" in request["messages"][-1]["content"]
    usage = _sampling_usage(store, run_id)
    assert usage["llm_prompt_tokens"]["quantity"] == 11
    assert usage["llm_completion_tokens"]["quantity"] == 3


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_step_sampling_falls_back_to_local_model(store: Store, tmp_path: Path) -> None:
    try:
        find_install()
    except LocalModelNotInstalledError as error:
        pytest.fail(f"{error}; run tools/bootstrap-test-deps.sh to install the local model")
    engine, _log, instance_id = await _everything_studio(store, tmp_path)
    try:
        run_id = await engine.run_workflow(build_workflow([_sampling_step(instance_id)]))
        summary = await engine.wait(run_id)
    finally:
        await engine.aclose()
        await shared_manager().stop()

    assert summary.status == "completed", summary.error
    result = str(summary.result)
    assert "LLM sampling result" in result
    assert f'"model": "{LOCAL_MODEL_NAME}"' in result
    usage = _sampling_usage(store, run_id)
    assert usage["mcp_sampling"]["detail"]["model"] == LOCAL_MODEL_NAME
    # Exact counts from the server (the request asked for at most 8 tokens), not a length estimate.
    assert 0 < usage["llm_completion_tokens"]["quantity"] <= 8
    assert usage["llm_prompt_tokens"]["quantity"] > 0
