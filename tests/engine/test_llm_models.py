"""Tests of model lists: each provider's list resource on its loopback fake, and the list of a stored connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from studio.engine.executors.llm import LlmEndpoint, list_models
from studio.engine.executors.llm_default import list_connection_models
from studio.engine.executors.llm_errors import LlmConfigError, LlmHttpError, LlmProtocolError, LlmRateLimitError
from studio.secrets import create_connection
from studio.secrets.vault import open_vault
from studio.store import Store
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.ollama_server import ollama_server
from tests.fakes.openai_server import RawReply, html_page, openai_server, rate_limited

API_KEY = "sk-models-test-8e41c07d2b"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http_client:
        yield http_client


def vault_environ(tmp_path: Path) -> dict[str, str]:
    """Environment that selects the encrypted-file vault in ``tmp_path``."""
    return {
        "STUDIO_SECRETS_BACKEND": "file",
        "STUDIO_SECRETS_FILE": str(tmp_path / "secrets.enc"),
        "STUDIO_SECRETS_PASSPHRASE": "models test passphrase",
    }


# --- per provider ---------------------------------------------------------------------------------------


async def test_openai_models_listed(client: httpx.AsyncClient) -> None:
    with openai_server(api_key=API_KEY, models=("gpt-b", "gpt-a")) as running:
        models = await list_models(client, LlmEndpoint("openai", running.base_url, api_key=API_KEY))

        sent = running.requests[-1]

    assert models == ["gpt-b", "gpt-a"]
    assert (sent.method, sent.path) == ("GET", "/v1/models")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


async def test_anthropic_models_listed(client: httpx.AsyncClient) -> None:
    with anthropic_server(api_key=API_KEY, models=("claude-b", "claude-a")) as running:
        models = await list_models(client, LlmEndpoint("anthropic", running.base_url, api_key=API_KEY))

        sent = running.requests[-1]

    assert models == ["claude-b", "claude-a"]
    assert sent.path == "/v1/models"
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"


async def test_ollama_models_listed(client: httpx.AsyncClient) -> None:
    with ollama_server(models=("llama3.2:latest", "qwen3:4b")) as running:
        models = await list_models(client, LlmEndpoint("ollama", running.base_url))

        sent = running.requests[-1]

    assert models == ["llama3.2:latest", "qwen3:4b"]
    assert sent.path == "/api/tags"


async def test_changed_model_list_is_read_again(client: httpx.AsyncClient) -> None:
    with openai_server(models=("first",)) as running:
        endpoint = LlmEndpoint("openai", running.base_url)
        before = await list_models(client, endpoint)
        running.set_models(["second", "third"])
        after = await list_models(client, endpoint)

    assert before == ["first"]
    assert after == ["second", "third"]


async def test_empty_model_list(client: httpx.AsyncClient) -> None:
    with ollama_server(models=()) as running:
        models = await list_models(client, LlmEndpoint("ollama", running.base_url))

    assert models == []


# --- failures -------------------------------------------------------------------------------------------


async def test_wrong_key_rejected_with_hint(client: httpx.AsyncClient) -> None:
    with openai_server(api_key=API_KEY) as running, pytest.raises(LlmHttpError) as caught:
        await list_models(client, LlmEndpoint("openai", running.base_url, api_key="sk-wrong-key-31415"))

    assert caught.value.status == 401
    assert "check the API key" in caught.value.message
    assert "sk-wrong-key-31415" not in caught.value.message


async def test_html_instead_of_list(client: httpx.AsyncClient) -> None:
    with ollama_server() as running:
        running.tags_reply = html_page()
        with pytest.raises(LlmProtocolError) as caught:
            await list_models(client, LlmEndpoint("ollama", running.base_url))

    assert "an HTML page titled 'Welcome to nginx!'" in caught.value.message
    assert "check the base URL" in caught.value.message


async def test_list_without_data_rejected(client: httpx.AsyncClient) -> None:
    with ollama_server() as running:
        running.tags_reply = RawReply(200, '{"items": []}')
        with pytest.raises(LlmProtocolError) as caught:
            await list_models(client, LlmEndpoint("ollama", running.base_url))

    assert "sent a model list without a 'models' list" in caught.value.message


async def test_rate_limited_list_retried(client: httpx.AsyncClient) -> None:
    with ollama_server(models=("m1",)) as running:
        running.tags_reply = rate_limited(retry_after="0.05")
        endpoint = LlmEndpoint("ollama", running.base_url, max_rate_limit_retries=1)
        with pytest.raises(LlmRateLimitError) as caught:
            await list_models(client, endpoint)

        paths = [r.path for r in running.requests]

    assert paths == ["/api/tags", "/api/tags"]
    assert caught.value.retry_after_s == pytest.approx(0.05)
    assert "rate limited" in caught.value.message


# --- stored connections ---------------------------------------------------------------------------------


async def test_connection_models_use_its_secret(client: httpx.AsyncClient, store: Store, tmp_path: Path) -> None:
    environ = vault_environ(tmp_path)
    vault = open_vault(store.workspace_slug(), environ=environ)
    with openai_server(api_key=API_KEY, models=("gpt-fake", "gpt-fake-mini")) as running:
        create_connection(store, vault, "Work", "api_key", provider="openai", base_url=running.base_url, secret=API_KEY)

        models = await list_connection_models(client, store, "Work", environ)

        sent = running.requests[-1]

    assert models == ["gpt-fake", "gpt-fake-mini"]
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


async def test_connection_models_keyless_ollama(client: httpx.AsyncClient, store: Store, tmp_path: Path) -> None:
    vault = open_vault(store.workspace_slug(), environ=vault_environ(tmp_path))
    with ollama_server(models=("llama3.2:latest",)) as running:
        created = create_connection(store, vault, "Local", "none", provider="ollama", base_url=running.base_url)

        models = await list_connection_models(client, store, created.id)

    assert models == ["llama3.2:latest"]


async def test_connection_models_unknown_connection(client: httpx.AsyncClient, store: Store) -> None:
    with pytest.raises(LlmConfigError) as caught:
        await list_connection_models(client, store, "nope")

    assert "connection 'nope' was not found" in caught.value.message


async def test_connection_models_non_llm_provider(client: httpx.AsyncClient, store: Store, tmp_path: Path) -> None:
    vault = open_vault(store.workspace_slug(), environ=vault_environ(tmp_path))
    create_connection(store, vault, "GitHub", "none", provider="github", base_url="https://api.github.com")

    with pytest.raises(LlmConfigError) as caught:
        await list_connection_models(client, store, "GitHub")

    assert "LLM connection 'GitHub' needs a provider (openai, anthropic, ollama)" in caught.value.message
