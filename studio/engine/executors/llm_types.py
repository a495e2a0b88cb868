"""Value types of the LLM client: endpoint settings, chat request, token usage and chat result."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

from pydantic import JsonValue

from studio.engine.executors.llm_errors import LlmConfigError

__all__ = ["ChatRequest", "ChatResult", "JsonValue", "LlmEndpoint", "Provider", "ProviderReply", "TokenUsage"]

Provider: TypeAlias = Literal["openai", "anthropic", "ollama"]
SUPPORTED_PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic", "ollama")

# Default value of the anthropic-version header, which every Anthropic API request must carry.
DEFAULT_ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True)
class LlmEndpoint:
    """Connection settings of an LLM server.

    ``provider`` selects the wire protocol. ``"openai"`` is the OpenAI Chat Completions protocol, which
    OpenAI and many local servers speak (Ollama under ``/v1``, for example). ``"anthropic"`` is the
    Anthropic Messages API and ``"ollama"`` is Ollama's native ``/api/chat``.
    """

    provider: Provider
    # Root of the API. For "openai" it includes the version, as in http://127.0.0.1:8000/v1, and the client
    # appends /chat/completions. For "anthropic" it is the server root (https://api.anthropic.com) and the
    # client appends /v1/messages. For "ollama" it is the server root (http://127.0.0.1:11434) and the
    # client appends /api/chat.
    base_url: str
    # Secret: kept out of repr, logs and error messages.
    api_key: str | None = field(default=None, repr=False)
    # Limit in seconds for connecting, for sending the request, and for each wait on the server
    # (the whole reply without streaming, the gap between two chunks with streaming).
    request_timeout_s: float = 120.0
    # Retries after HTTP 429 and 5xx replies. Each waits as long as Retry-After requests, or an
    # exponential backoff with jitter when the reply has no Retry-After.
    max_rate_limit_retries: int = 3
    # Maximum wait in seconds before a single retry. A longer Retry-After fails the call at once.
    max_retry_wait_s: float = 60.0
    # First backoff delay in seconds when a retryable reply has no Retry-After; doubles per retry.
    retry_backoff_base_s: float = 0.5
    # Sent with every request. Kept out of repr because gateways often put keys here.
    extra_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Value of the anthropic-version header; used only by the "anthropic" provider.
    anthropic_version: str = DEFAULT_ANTHROPIC_VERSION

    def __post_init__(self) -> None:
        if self.provider not in SUPPORTED_PROVIDERS:
            raise LlmConfigError(
                f"unsupported LLM provider {self.provider!r}; use one of {', '.join(SUPPORTED_PROVIDERS)}"
            )
        _check_base_url(self.base_url)
        _check_positive("request_timeout_s", self.request_timeout_s)
        _check_positive("max_retry_wait_s", self.max_retry_wait_s)
        _check_positive("retry_backoff_base_s", self.retry_backoff_base_s)
        if self.max_rate_limit_retries < 0:
            raise LlmConfigError(f"max_rate_limit_retries must be 0 or more, got {self.max_rate_limit_retries}")
        if not self.anthropic_version.strip():
            raise LlmConfigError(f"anthropic_version is empty; use {DEFAULT_ANTHROPIC_VERSION}")

    @property
    def chat_completions_url(self) -> str:
        """Absolute URL of the Chat Completions resource (``"openai"`` provider)."""
        return self.base_url.rstrip("/") + "/chat/completions"

    @property
    def chat_url(self) -> str:
        """Absolute URL that chat requests of this endpoint's provider are sent to."""
        if self.provider == "anthropic":
            return self._server_root("/v1") + "/v1/messages"
        if self.provider == "ollama":
            return self._server_root("/v1", "/api") + "/api/chat"
        return self.chat_completions_url

    @property
    def models_url(self) -> str:
        """Absolute URL of the provider's model list."""
        if self.provider == "anthropic":
            return self._server_root("/v1") + "/v1/models"
        if self.provider == "ollama":
            return self._server_root("/v1", "/api") + "/api/tags"
        return self.base_url.rstrip("/") + "/models"

    def _server_root(self, *api_suffixes: str) -> str:
        """Return the base URL without a trailing slash or API path, which users often copy along."""
        root = self.base_url.rstrip("/")
        for suffix in api_suffixes:
            root = root.removesuffix(suffix)
        return root


@dataclass(frozen=True)
class ChatRequest:
    """One chat turn: an optional system prompt and a user prompt, sent to ``model``."""

    model: str
    system_prompt: str | None
    prompt: str
    temperature: float | None = None
    max_tokens: int | None = None
    # JSON Schema the reply must match. When set, the server is asked for JSON output (OpenAI's
    # response_format, a forced tool call for Anthropic, Ollama's format) and the reply is parsed and validated.
    output_schema: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise LlmConfigError("model name is empty; set the model the server should run, for example gpt-4o-mini")
        if self.temperature is not None and not (0.0 <= self.temperature <= 2.0):
            raise LlmConfigError(f"temperature must be between 0 and 2, got {self.temperature}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise LlmConfigError(f"max_tokens must be 1 or more, got {self.max_tokens}")


@dataclass(frozen=True)
class TokenUsage:
    """Token counts of one call. ``estimated`` is true when the server sent no counts and these are guesses."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    estimated: bool = False

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            estimated=self.estimated or other.estimated,
        )


@dataclass(frozen=True)
class ChatResult:
    """Reply of a chat call.

    ``value`` is the parsed JSON when the request had an ``output_schema``, else the same string as ``text``.
    ``usage`` covers every attempt the call made, including a corrective retry for invalid JSON.
    """

    text: str
    value: JsonValue
    usage: TokenUsage
    model: str
    finish_reason: str | None


def _check_base_url(base_url: str) -> None:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LlmConfigError(
            f"invalid LLM base URL {base_url!r}; use an http:// or https:// URL such as http://127.0.0.1:11434/v1"
        )
    if parts.username or parts.password:
        # The URL appears in messages and logs, so credentials in it would leak.
        raise LlmConfigError("invalid LLM base URL: it contains credentials; put the key in api_key instead")
    if parts.query or parts.fragment:
        raise LlmConfigError(
            f"invalid LLM base URL {base_url!r}: remove the query or fragment, "
            "because the client appends the API path to the URL"
        )


def _check_positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise LlmConfigError(f"{name} must be a positive number of seconds, got {value}")


@dataclass(frozen=True)
class ProviderReply:
    """Reply of one HTTP exchange as a provider module returns it, before output parsing and usage estimation."""

    text: str
    usage: TokenUsage | None
    model: str | None
    finish_reason: str | None


def output_schema_json(schema: Mapping[str, Any]) -> Any:
    """Return ``schema`` rebuilt from plain dicts and lists, as jsonschema and the request body need it.

    Raises:
        LlmConfigError: the schema contains values JSON cannot encode.
    """

    def convert(obj: object) -> object:
        if isinstance(obj, Mapping):
            return dict(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    try:
        return json.loads(json.dumps(schema, default=convert))
    except (TypeError, ValueError) as exc:
        raise LlmConfigError(f"output_schema is not a JSON document: {exc}") from None
