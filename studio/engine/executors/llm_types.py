"""Value types of the LLM client: endpoint settings, chat request, tools, token usage and chat result."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeGuard
from urllib.parse import urlsplit

from pydantic import JsonValue

from studio.engine.executors.llm_errors import LlmConfigError, LlmOutputError

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "JsonValue",
    "LlmEndpoint",
    "Provider",
    "ProviderReply",
    "TokenUsage",
    "ToolCall",
    "ToolSpec",
]

Provider: TypeAlias = Literal["openai", "anthropic", "ollama"]
SUPPORTED_PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic", "ollama")
# A chat message as the OpenAI protocol writes it: {"role": "system" | "user" | "assistant", "content": text}.
ChatMessage: TypeAlias = dict[str, str]
# Receives each piece of reply text as it arrives.
DeltaCallback: TypeAlias = Callable[[str], None]
# Tool choices every provider understands. Any other value names the one tool the model must call.
_TOOL_CHOICE_MODES = ("auto", "required", "none")
_TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Most stop sequences OpenAI accepts in one request; the other providers accept at least as many.
_MAX_STOP_SEQUENCES = 4

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
class ToolSpec:
    """A function the model may call: its name, what it does, and a JSON Schema of its arguments object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def __post_init__(self) -> None:
        if not _TOOL_NAME_PATTERN.match(self.name):
            raise LlmConfigError(
                f"invalid tool name {self.name!r}; use 1 to 64 letters, digits, '_' or '-', as every provider accepts"
            )
        schema = output_schema_json(self.parameters)
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise LlmConfigError(f'the parameters of tool {self.name!r} must be a JSON Schema with "type": "object"')

    def parameters_json(self) -> dict[str, Any]:
        """Return the parameters schema as plain dicts and lists, as request bodies need it."""
        schema: dict[str, Any] = output_schema_json(self.parameters)
        return schema


@dataclass(frozen=True)
class ToolCall:
    """A call of one of the request's tools by the model. ``id`` links the call to its result in a later turn."""

    id: str
    name: str
    arguments: dict[str, JsonValue]


@dataclass(frozen=True)
class ChatRequest:
    """One chat turn sent to ``model``: an optional system prompt, earlier turns, and a user prompt."""

    model: str
    system_prompt: str | None
    prompt: str
    temperature: float | None = None
    max_tokens: int | None = None
    # JSON Schema the reply must match. When set, the server is asked for JSON output (OpenAI's
    # response_format, a forced tool call for Anthropic, Ollama's format) and the reply is parsed and validated.
    output_schema: Mapping[str, Any] | None = None
    # Earlier turns with the roles "user" and "assistant", sent after the system prompt and before ``prompt``.
    # With a history, an empty ``prompt`` sends no further user message.
    history: tuple[ChatMessage, ...] = ()
    # Texts that end the reply when the model produces them. The stop text itself is not part of the reply.
    stop: tuple[str, ...] = ()
    # Functions the model may call instead of, or besides, replying with text.
    tools: tuple[ToolSpec, ...] = ()
    # "auto" (the default when tools are given), "required", "none", or the name of the tool to call.
    tool_choice: str | None = None

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise LlmConfigError("model name is empty; set the model the server should run, for example gpt-4o-mini")
        if self.temperature is not None and not (0.0 <= self.temperature <= 2.0):
            raise LlmConfigError(f"temperature must be between 0 and 2, got {self.temperature}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise LlmConfigError(f"max_tokens must be 1 or more, got {self.max_tokens}")
        self._check_history()
        self._check_stop()
        self._check_tools()

    def _check_history(self) -> None:
        for index, message in enumerate(self.history):
            role = message.get("role")
            if role not in ("user", "assistant") or not isinstance(message.get("content"), str):
                raise LlmConfigError(
                    f"history[{index}] must be {{'role': 'user' or 'assistant', 'content': text}}, got {message!r:.100}"
                )

    def _check_stop(self) -> None:
        if len(self.stop) > _MAX_STOP_SEQUENCES:
            raise LlmConfigError(f"at most {_MAX_STOP_SEQUENCES} stop sequences are allowed, got {len(self.stop)}")
        if any(not isinstance(text, str) or not text for text in self.stop):
            raise LlmConfigError(f"stop sequences must be non-empty strings, got {list(self.stop)!r}")

    def _check_tools(self) -> None:
        names = [tool.name for tool in self.tools]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise LlmConfigError(f"tool names must be unique; {', '.join(duplicates)} appear more than once")
        if self.tools and self.output_schema is not None:
            raise LlmConfigError("set either tools or output_schema on a request, not both")
        if self.tool_choice is None:
            return
        if not self.tools:
            raise LlmConfigError(f"tool_choice {self.tool_choice!r} is set but the request has no tools")
        if self.tool_choice not in _TOOL_CHOICE_MODES and self.tool_choice not in names:
            raise LlmConfigError(
                f"tool_choice {self.tool_choice!r} is neither one of {', '.join(_TOOL_CHOICE_MODES)} "
                f"nor the name of a tool ({', '.join(names)})"
            )


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
    ``finish_reason`` uses OpenAI's names: "stop", "length" (cut off at max_tokens), "tool_calls".
    """

    text: str
    value: JsonValue
    usage: TokenUsage
    model: str
    finish_reason: str | None
    tool_calls: tuple[ToolCall, ...] = ()


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
    tool_calls: tuple[ToolCall, ...] = ()


def is_token_count(value: object) -> TypeGuard[int]:
    """Return whether ``value`` is a usable token count: a non-negative int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_tool_call(call_id: str, name: str, arguments: object, *, url: str) -> ToolCall:
    """Return a ToolCall with ``arguments`` (a JSON text, an object or None) as a JSON object.

    Raises:
        LlmOutputError: the arguments are not a JSON object (retryable, because another try may produce valid ones).
    """
    value: object = arguments
    if arguments is None or arguments == "":
        value = {}
    elif isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except ValueError as exc:
            raise LlmOutputError(
                f"LLM server at {url} sent a call of tool {name!r} whose arguments are not valid JSON "
                f"({exc}): {arguments[:200]!r}"
            ) from None
    if not isinstance(value, dict):
        raise LlmOutputError(
            f"LLM server at {url} sent a call of tool {name!r} whose arguments are not a JSON object: {value!r:.200}"
        )
    return ToolCall(id=call_id, name=name, arguments=value)


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
