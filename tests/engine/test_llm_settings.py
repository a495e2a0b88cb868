"""Tests of LLM settings: endpoint and request validation, and endpoints read from environment variables."""

from __future__ import annotations

import pytest

from studio.engine.executors.llm import ChatRequest, LlmConfigError, LlmEndpoint, endpoint_from_env


@pytest.mark.parametrize(
    ("env", "base_url", "api_key"),
    [
        ({"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1", "OPENAI_API_KEY": "sk-a"}, "http://127.0.0.1:8000/v1", "sk-a"),
        ({"OPENAI_API_KEY": "sk-b"}, "https://api.openai.com/v1", "sk-b"),
        ({"OPENAI_BASE_URL": "http://gateway:4000/v1"}, "http://gateway:4000/v1", None),
        ({"OLLAMA_BASE_URL": "http://127.0.0.1:11434"}, "http://127.0.0.1:11434/v1", None),
        ({"OLLAMA_BASE_URL": "http://127.0.0.1:11434/v1/"}, "http://127.0.0.1:11434/v1", None),
        ({"OLLAMA_HOST": "0.0.0.0"}, "http://127.0.0.1:11434/v1", None),
        ({"OLLAMA_HOST": ":11500"}, "http://127.0.0.1:11500/v1", None),
        ({"OLLAMA_HOST": "10.1.2.3:8080"}, "http://10.1.2.3:8080/v1", None),
        ({"OLLAMA_HOST": "https://ollama.example.org"}, "https://ollama.example.org/v1", None),
        ({"OLLAMA_HOST": "[::1]:11434"}, "http://[::1]:11434/v1", None),
        # OpenAI settings win over Ollama ones.
        ({"OPENAI_API_KEY": "sk-c", "OLLAMA_HOST": "0.0.0.0"}, "https://api.openai.com/v1", "sk-c"),
    ],
)
def test_endpoint_from_env(env: dict[str, str], base_url: str, api_key: str | None) -> None:
    endpoint = endpoint_from_env(env)

    assert endpoint is not None
    assert endpoint.provider == "openai"
    assert endpoint.base_url == base_url
    assert endpoint.api_key == api_key


@pytest.mark.parametrize("env", [{}, {"OPENAI_API_KEY": "  ", "OLLAMA_HOST": ""}, {"UNRELATED": "1"}])
def test_endpoint_from_env_none(env: dict[str, str]) -> None:
    assert endpoint_from_env(env) is None


def test_endpoint_from_env_invalid_url() -> None:
    with pytest.raises(LlmConfigError) as caught:
        endpoint_from_env({"OPENAI_BASE_URL": "localhost:8000/v1"})

    assert "environment variable OPENAI_BASE_URL" in caught.value.message
    assert "'localhost:8000/v1'" in caught.value.message


def test_endpoint_from_env_invalid_ollama_port() -> None:
    with pytest.raises(LlmConfigError) as caught:
        endpoint_from_env({"OLLAMA_HOST": "127.0.0.1:99999"})

    assert "OLLAMA_HOST" in caught.value.message


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"base_url": "ftp://host/v1"}, "invalid LLM base URL 'ftp://host/v1'"),
        ({"base_url": "http:///v1"}, "invalid LLM base URL"),
        ({"base_url": "http://host/v1?api-version=1"}, "remove the query"),
        ({"base_url": "http://user:sk-secret@host/v1"}, "contains credentials"),
        ({"request_timeout_s": 0}, "request_timeout_s must be a positive number"),
        ({"max_retry_wait_s": float("inf")}, "max_retry_wait_s must be a positive number"),
        ({"max_rate_limit_retries": -1}, "max_rate_limit_retries must be 0 or more"),
        ({"provider": "gemini"}, "unsupported LLM provider 'gemini'"),
    ],
)
def test_endpoint_rejects_invalid_settings(options: dict[str, object], expected: str) -> None:
    settings: dict[str, object] = {"provider": "openai", "base_url": "http://127.0.0.1:1/v1", **options}

    with pytest.raises(LlmConfigError) as caught:
        LlmEndpoint(**settings)  # type: ignore[arg-type]

    assert expected in caught.value.message
    assert "sk-secret" not in caught.value.message


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"model": " "}, "model name is empty"),
        ({"temperature": 2.5}, "temperature must be between 0 and 2, got 2.5"),
        ({"max_tokens": 0}, "max_tokens must be 1 or more, got 0"),
    ],
)
def test_request_rejects_invalid_settings(options: dict[str, object], expected: str) -> None:
    settings: dict[str, object] = {"model": "m", "system_prompt": None, "prompt": "p", **options}

    with pytest.raises(LlmConfigError) as caught:
        ChatRequest(**settings)  # type: ignore[arg-type]

    assert expected in caught.value.message


def test_config_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        LlmEndpoint("openai", "not a url")
