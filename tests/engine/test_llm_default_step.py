"""Tests of ``llm_call`` steps that name no connection or no model, run by the engine on the loopback fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from studio.engine import ExecutorServices
from studio.engine.engine import EngineError
from studio.engine.errors import StepError
from studio.engine.executors.llm_default import set_default_connection
from studio.engine.executors_api import StepContext, execute_llm_call
from studio.secrets import create_connection
from studio.secrets.vault import SecretVault, open_vault
from studio.store import Store
from tests.conftest import EngineFactory, build_workflow
from tests.fakes.openai_server import TextReply, html_page, openai_server
from tests.secrets.keyring_backends import MemoryKeyring

# The async tests share the module's event loop, as the engine fixtures of tests.conftest need.
module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def vault(store: Store) -> SecretVault:
    """An in-memory vault: the connections here have kind "none", so no secret is stored or read."""
    return open_vault(store.workspace_slug(), backend=MemoryKeyring())


@pytest_asyncio.fixture(loop_scope="module")
async def services(store: Store) -> AsyncIterator[ExecutorServices]:
    created = ExecutorServices(store, environ={})
    yield created
    await created.aclose()


def ask_step(**config: Any) -> dict[str, Any]:
    return {"id": "ask", "type": "llm_call", "config": {"prompt": "Name a colour.", **config}}


@module_loop
async def test_step_without_connection_uses_default(
    make_engine: EngineFactory, store: Store, vault: SecretVault, services: ExecutorServices
) -> None:
    with openai_server() as server:
        connection = create_connection(store, vault, "team gateway", "none", provider="openai", base_url=server.base_url)
        set_default_connection(store, connection.id, default_model="gpt-team")
        server.script(TextReply("Teal", usage=(9, 1)))
        studio, _ = await make_engine(services=services)

        run_id = await studio.run_workflow(build_workflow([ask_step()]))
        summary = await studio.wait(run_id)

        sent = server.chat_requests[-1].json

    assert summary.status == "completed", summary.error
    assert summary.result == {"ask": "Teal"}
    assert sent["model"] == "gpt-team"
    usage = {row["kind"]: row for row in store.usage(run_id)}
    assert usage["llm_prompt_tokens"]["quantity"] == 9
    assert usage["llm_prompt_tokens"]["detail"]["source"] == "connection"
    assert usage["llm_prompt_tokens"]["detail"]["base_url"] == server.base_url
    assert usage["llm_completion_tokens"]["detail"]["model"] == "gpt-team"


@module_loop
async def test_default_connection_failure_names_it(
    make_engine: EngineFactory, store: Store, vault: SecretVault, services: ExecutorServices
) -> None:
    with openai_server() as server:
        connection = create_connection(store, vault, "team gateway", "none", provider="openai", base_url=server.base_url)
        set_default_connection(store, connection.id, default_model="gpt-team")
        server.script(html_page(status=404))
        studio, _ = await make_engine(services=services)

        run_id = await studio.run_workflow(build_workflow([ask_step()]))
        summary = await studio.wait(run_id)

    assert summary.status == "failed"
    message = str(summary.error)
    assert "default LLM connection 'team gateway': LLM server at" in message
    assert "HTTP 404" in message


@module_loop
async def test_step_model_overrides_default_model(
    make_engine: EngineFactory, store: Store, vault: SecretVault, services: ExecutorServices
) -> None:
    with openai_server() as server:
        connection = create_connection(store, vault, "team gateway", "none", provider="openai", base_url=server.base_url)
        set_default_connection(store, connection.id, default_model="gpt-team")
        studio, _ = await make_engine(services=services)

        run_id = await studio.run_workflow(build_workflow([ask_step(model="gpt-special")]))
        summary = await studio.wait(run_id)

        sent = server.chat_requests[-1].json

    assert summary.status == "completed", summary.error
    assert sent["model"] == "gpt-special"


@module_loop
async def test_environment_comes_before_default(make_engine: EngineFactory, store: Store, vault: SecretVault) -> None:
    with openai_server() as default_server, openai_server() as env_server:
        connection = create_connection(
            store, vault, "team gateway", "none", provider="openai", base_url=default_server.base_url
        )
        set_default_connection(store, connection.id, default_model="gpt-team")
        services = ExecutorServices(store, environ={"OPENAI_BASE_URL": env_server.base_url})
        studio, _ = await make_engine(services=services)

        run_id = await studio.run_workflow(build_workflow([ask_step(model="env-model")]))
        summary = await studio.wait(run_id)
        await services.aclose()

        default_requests = len(default_server.chat_requests)
        env_requests = len(env_server.chat_requests)

    assert summary.status == "completed", summary.error
    assert default_requests == 0
    assert env_requests == 1
    usage = {row["kind"]: row for row in store.usage(run_id)}
    assert usage["llm_prompt_tokens"]["detail"]["source"] == "environment"


def step_context(services: ExecutorServices, usage: list[tuple[str, float, dict[str, Any]]]) -> StepContext:
    """A context for calling the executor the way a runner without validation would, recording usage."""
    return StepContext(
        run_id="run-1",
        workflow_id="workflow-1",
        step_key="ask",
        step_id="ask",
        attempt=1,
        services=services,
        emit=lambda kind, data: None,
        record_usage=lambda kind, quantity, unit, detail: usage.append((kind, quantity, detail)),
    )


@module_loop
async def test_named_connection_serves_its_default_model(
    store: Store, vault: SecretVault, services: ExecutorServices
) -> None:
    usage: list[tuple[str, float, dict[str, Any]]] = []
    with openai_server() as server:
        connection = create_connection(
            store, vault, "lab", "none", provider="openai", base_url=server.base_url, settings={"default_model": "lab-1"}
        )
        server.script(TextReply("Red"))

        value = await execute_llm_call(
            {"connection_id": connection.id, "prompt": "Name a colour."}, step_context(services, usage)
        )

        sent = server.chat_requests[-1].json

    assert value == "Red"
    assert sent["model"] == "lab-1"
    assert usage[0][2]["source"] == "connection"


@module_loop
async def test_named_connection_without_model_fails(
    store: Store, vault: SecretVault, services: ExecutorServices
) -> None:
    with openai_server() as server:
        connection = create_connection(store, vault, "lab", "none", provider="openai", base_url=server.base_url)

        with pytest.raises(StepError) as raised:
            await execute_llm_call({"connection_id": connection.id, "prompt": "Hi"}, step_context(services, []))

        requests = len(server.chat_requests)

    assert raised.value.kind == "invalid_input"
    assert "connection 'lab'" in str(raised.value)
    assert "settings.default_model" in str(raised.value)
    assert requests == 0


@module_loop
async def test_engine_rejects_named_connection_without_model(
    make_engine: EngineFactory, store: Store, vault: SecretVault, services: ExecutorServices
) -> None:
    connection = create_connection(store, vault, "lab", "none", provider="openai", base_url="http://127.0.0.1:9/v1")
    studio, _ = await make_engine(services=services)

    with pytest.raises(EngineError) as raised:
        await studio.run_workflow(build_workflow([ask_step(connection_id=connection.id)]))

    assert "no model" in str(raised.value)
    assert "config.model" in str(raised.value)


@module_loop
async def test_environment_without_model_fails(store: Store) -> None:
    with openai_server() as server:
        services = ExecutorServices(store, environ={"OPENAI_BASE_URL": server.base_url})
        try:
            with pytest.raises(StepError) as raised:
                await execute_llm_call({"prompt": "Hi"}, step_context(services, []))
        finally:
            await services.aclose()

        requests = len(server.chat_requests)

    assert raised.value.kind == "invalid_input"
    assert "environment has no default model" in str(raised.value)
    assert "set config.model" in str(raised.value)
    assert requests == 0
