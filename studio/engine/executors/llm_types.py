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

__all__ = ["ChatRequest", "ChatResult", "JsonValue", "LlmEndpoint", "ProviderReply", "TokenUsage"]

Provider: TypeAlias = Literal["openai"]
SUPPORTED_PROVIDERS: tuple[Provider, ...] = ("openai",)


@dataclass(frozen=True)
class LlmEndpoint:
    """Connection settings of an LLM server.

    ``provider`` selects the wire protocol. ``"openai"`` is the OpenAI Chat Completions protocol, which
    OpenAI and many local servers speak (Ollama under ``/v1``, for example).
    """

    provider: Provider
    # Root of the API, for example http://127.0.0.1:8000/v1; the client appends /chat/completions.
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

    @property
    def chat_completions_url(self) -> str:
        """Absolute URL of the Chat Completions resource."""
        return self.base_url.rstrip("/") + "/chat/completions"


@dataclass(frozen=True)
class ChatRequest:
    """One chat turn: an optional system prompt and a user prompt, sent to ``model``."""

    model: str
    system_prompt: str | None
    prompt: str
    temperature: float | None = None
    max_tokens: int | None = None
    # JSON Schema the reply must match. When set, the server is asked for JSON output
    # (response_format json_schema) and the reply is parsed and validated.
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
            "because the client appends /chat/completions to the URL"
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
