"""LLM client for ``llm_call`` steps: one chat call with streaming, retries and JSON Schema output checks.

Usage::

    async with httpx.AsyncClient() as client:
        endpoint = endpoint_from_env() or LlmEndpoint("openai", "http://127.0.0.1:11434/v1")
        result = await chat_completion(client, endpoint, ChatRequest("llama3.2", None, "Say hi"), on_delta=print)

``endpoint.provider`` selects the wire protocol: OpenAI Chat Completions (llm_openai), Anthropic Messages
(llm_anthropic) or Ollama's native chat API (llm_ollama). Token usage comes from the server. A server that
sends none gets an estimate of about four characters per token, marked with ``TokenUsage.estimated``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import jsonschema
from jsonschema.exceptions import best_match

from studio.engine.executors.llm_anthropic import complete_anthropic, list_anthropic_models
from studio.engine.executors.llm_errors import (
    LlmConfigError,
    LlmConnectError,
    LlmError,
    LlmHttpError,
    LlmOutputError,
    LlmProtocolError,
    LlmRateLimitError,
    LlmTimeoutError,
)
from studio.engine.executors.llm_http import get_json
from studio.engine.executors.llm_ollama import complete_ollama, list_ollama_models
from studio.engine.executors.llm_openai import complete_openai
from studio.engine.executors.llm_types import (
    SUPPORTED_PROVIDERS,
    ChatMessage,
    ChatRequest,
    ChatResult,
    DeltaCallback,
    JsonValue,
    LlmEndpoint,
    Provider,
    ProviderReply,
    TokenUsage,
    ToolCall,
    ToolSpec,
    output_schema_json,
)

__all__ = [
    "ChatRequest",
    "ChatResult",
    "JsonValue",
    "LlmConfigError",
    "LlmConnectError",
    "LlmEndpoint",
    "LlmError",
    "LlmHttpError",
    "LlmOutputError",
    "LlmProtocolError",
    "LlmRateLimitError",
    "LlmTimeoutError",
    "Provider",
    "TokenUsage",
    "ToolCall",
    "ToolSpec",
    "chat_completion",
    "endpoint_from_env",
    "endpoint_from_env_for",
    "list_models",
    "missing_endpoint_hint",
    "parse_provider",
]

logger = logging.getLogger(__name__)

ProviderCall = Callable[..., Awaitable[ProviderReply]]

# One entry per wire protocol.
_PROVIDERS: Mapping[str, ProviderCall] = {
    "openai": complete_openai,
    "anthropic": complete_anthropic,
    "ollama": complete_ollama,
}

# Rough size of a token in characters, used only when the server sends no usage.
_CHARS_PER_TOKEN = 4
# Tokens a chat message costs beyond its text (role and separators), again only for the estimate.
_TOKENS_PER_MESSAGE = 4
_OLLAMA_DEFAULT_PORT = 11434
_OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
_ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"
# Environment variables to set, per provider, when endpoint_from_env_for finds none.
_MISSING_ENDPOINT_HINTS: Mapping[str, str] = {
    "openai": "set OPENAI_BASE_URL (and OPENAI_API_KEY) or OLLAMA_HOST",
    "anthropic": "set ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL for a server other than https://api.anthropic.com)",
    "ollama": "set OLLAMA_HOST (for example 127.0.0.1:11434) or OLLAMA_BASE_URL (for example http://127.0.0.1:11434)",
}
_FENCE_PATTERN = re.compile(r"^```[A-Za-z]*\s*\n(?P<body>.*?)\n?```$", re.DOTALL)
_REPLY_EXCERPT_CHARS = 200


class _Validator(Protocol):
    def iter_errors(self, instance: object) -> Any: ...


async def chat_completion(
    client: httpx.AsyncClient,
    endpoint: LlmEndpoint,
    request: ChatRequest,
    *,
    on_delta: Callable[[str], None] | None = None,
    stream: bool = True,
) -> ChatResult:
    """Send ``request`` to ``endpoint`` and return the reply.

    ``on_delta`` receives each piece of reply text as it arrives (without streaming, the whole text once).
    With an ``output_schema``, a reply that is not JSON or does not match the schema gets one corrective
    retry, whose deltas follow those of the first attempt. Cancelling the awaiting task closes the stream.

    Raises:
        LlmConfigError: invalid output_schema.
        LlmOutputError: the reply still did not match the schema after the corrective retry.
        LlmError: any other failure; see the subclasses in llm_errors.
    """
    validator = _schema_validator(request.output_schema)
    messages = build_messages(request)
    reply = await _send(client, endpoint, request, messages, on_delta, stream)
    usage = _usage_or_estimate(reply, messages)
    if validator is None:
        return _result(reply, request, reply.text, usage)

    try:
        value = parse_output(reply, validator)
    except _InvalidOutput as problem:
        logger.info("LLM reply from model %s is invalid (%s); sending one corrective request", request.model, problem)
        messages = [*messages, *corrective_messages(reply.text, str(problem), request.output_schema)]
        reply = await _send(client, endpoint, request, messages, on_delta, stream)
        usage = usage + _usage_or_estimate(reply, messages)
        try:
            value = parse_output(reply, validator)
        except _InvalidOutput as second_problem:
            raise _output_error(second_problem, reply) from None
    return _result(reply, request, value, usage)


async def _send(
    client: httpx.AsyncClient,
    endpoint: LlmEndpoint,
    request: ChatRequest,
    messages: Sequence[ChatMessage],
    on_delta: DeltaCallback | None,
    stream: bool,
) -> ProviderReply:
    provider_call = _PROVIDERS[endpoint.provider]
    return await provider_call(client, endpoint, request, messages, on_delta=on_delta, stream=stream)


def _result(reply: ProviderReply, request: ChatRequest, value: JsonValue, usage: TokenUsage) -> ChatResult:
    finish_reason = reply.finish_reason
    if reply.tool_calls and finish_reason in (None, "stop"):
        # Some OpenAI-compatible servers end a reply with tool calls with "stop", so report "tool_calls" instead.
        finish_reason = "tool_calls"
    return ChatResult(
        text=reply.text,
        value=value,
        usage=usage,
        model=reply.model or request.model,
        finish_reason=finish_reason,
        tool_calls=reply.tool_calls,
    )


def build_messages(request: ChatRequest) -> list[ChatMessage]:
    """Return the chat messages of a request: the system prompt when there is one, the history, the user prompt.

    With a history, an empty prompt adds no user message, so the history's last turn is the one answered.
    """
    messages: list[ChatMessage] = []
    if request.system_prompt:
        messages.append({"role": "system", "content": request.system_prompt})
    messages.extend(dict(message) for message in request.history)
    if request.prompt or not request.history:
        messages.append({"role": "user", "content": request.prompt})
    return messages


def corrective_messages(bad_reply: str, problem: str, schema: Mapping[str, Any] | None) -> list[ChatMessage]:
    """Return the messages that show the model its invalid reply and ask for JSON matching ``schema``."""
    schema_text = json.dumps(schema, default=dict, ensure_ascii=False)
    return [
        {"role": "assistant", "content": bad_reply},
        {
            "role": "user",
            "content": (
                f"Your reply was invalid: {problem}. Reply again with only a JSON value, "
                f"with no other text, that matches this JSON Schema: {schema_text}"
            ),
        },
    ]


def _usage_or_estimate(reply: ProviderReply, messages: Sequence[ChatMessage]) -> TokenUsage:
    if reply.usage is not None:
        return reply.usage
    logger.debug("LLM server sent no token usage; estimating it from the text length")
    prompt_chars = sum(len(message["content"]) for message in messages)
    prompt_tokens = math.ceil(prompt_chars / _CHARS_PER_TOKEN) + _TOKENS_PER_MESSAGE * len(messages)
    completion_tokens = math.ceil(len(reply.text) / _CHARS_PER_TOKEN)
    return TokenUsage(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens, estimated=True)


class _InvalidOutput(Exception):
    """A reply that is not JSON or does not match the output schema; the message names the violation."""


def _schema_validator(schema: Mapping[str, Any] | None) -> _Validator | None:
    if schema is None:
        return None
    schema = output_schema_json(schema)
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        location = _json_path(exc.absolute_path)
        raise LlmConfigError(f"output_schema is not a valid JSON Schema: {exc.message} at {location}") from None
    validator: _Validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return validator


def parse_output(reply: ProviderReply, validator: _Validator) -> JsonValue:
    """Parse the reply text as JSON (a Markdown code fence around it is allowed) and validate it.

    Raises:
        _InvalidOutput: the text is empty, not JSON, or breaks the schema.
    """
    text = reply.text.strip()
    fenced = _FENCE_PATTERN.match(text)
    if fenced:
        text = fenced.group("body").strip()
    if not text:
        raise _InvalidOutput("the reply is empty, expected a JSON value")
    try:
        value: JsonValue = json.loads(text)
    except json.JSONDecodeError as exc:
        position = f"line {exc.lineno} column {exc.colno}"
        raise _InvalidOutput(f"the reply is not valid JSON: {exc.msg} at {position}") from None
    violation = best_match(validator.iter_errors(value))
    if violation is not None:
        raise _InvalidOutput(
            f"the JSON does not match the output schema at {_json_path(violation.absolute_path)}: {violation.message}"
        )
    return value


def _output_error(problem: _InvalidOutput, reply: ProviderReply) -> LlmOutputError:
    excerpt = " ".join(reply.text.split())
    if len(excerpt) > _REPLY_EXCERPT_CHARS:
        excerpt = excerpt[:_REPLY_EXCERPT_CHARS] + "..."
    message = f"LLM output is invalid after a corrective retry: {problem}. Reply was: {excerpt!r}"
    if reply.finish_reason == "length":
        message += ". The reply was cut off at max_tokens; raise max_tokens"
    return LlmOutputError(message)


def _json_path(path: Sequence[object]) -> str:
    """Return a JSONPath such as ``$.items[2].name`` for a jsonschema error path."""
    parts = ["$"]
    for key in path:
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(parts)


async def list_models(client: httpx.AsyncClient, endpoint: LlmEndpoint) -> list[str]:
    """Return the names of the models the endpoint's server offers, in the order the server lists them.

    Reads ``GET /models`` under the base URL for "openai", ``GET /v1/models`` (all pages) for "anthropic"
    and ``GET /api/tags`` for "ollama".

    Raises:
        LlmProtocolError: the reply is not a model list.
        LlmError: the request failed; see the subclasses in llm_errors.
    """
    if endpoint.provider == "anthropic":
        return await list_anthropic_models(client, endpoint)
    if endpoint.provider == "ollama":
        return await list_ollama_models(client, endpoint)
    url = endpoint.models_url
    data = (await get_json(client, endpoint, url)).get("data")
    if not isinstance(data, list):
        raise LlmProtocolError(f"LLM server at {url} sent a model list without a 'data' list")
    return [str(model["id"]) for model in data if isinstance(model, dict) and "id" in model]


def parse_provider(value: object) -> Provider:
    """Return ``value`` as a provider name; None and "" mean "openai".

    Raises:
        LlmConfigError: the value is not a supported provider.
    """
    if value is None or value == "":
        return "openai"
    for provider in SUPPORTED_PROVIDERS:
        if value == provider:
            return provider
    raise LlmConfigError(f"unsupported LLM provider {value!r}; use one of {', '.join(SUPPORTED_PROVIDERS)}")


def missing_endpoint_hint(provider: Provider) -> str:
    """Return which environment variables configure ``provider``, for an error message."""
    return _MISSING_ENDPOINT_HINTS[provider]


def endpoint_from_env_for(provider: Provider, env: Mapping[str, str] = os.environ) -> LlmEndpoint | None:
    """Return the endpoint for ``provider`` configured by environment variables, or None when none is set.

    "openai" reads what :func:`endpoint_from_env` reads. "anthropic" reads ``ANTHROPIC_API_KEY`` and
    ``ANTHROPIC_BASE_URL`` (either one is enough; the base URL defaults to https://api.anthropic.com).
    "ollama" reads ``OLLAMA_BASE_URL`` (the server root) or else ``OLLAMA_HOST`` for the native API.

    Raises:
        LlmConfigError: a variable is set to an invalid URL.
    """
    if provider == "openai":
        return endpoint_from_env(env)
    if provider == "anthropic":
        base_url = env.get("ANTHROPIC_BASE_URL", "").strip()
        api_key = env.get("ANTHROPIC_API_KEY", "").strip()
        if not (base_url or api_key):
            return None
        return _endpoint_for_variable(
            "ANTHROPIC_BASE_URL", base_url or _ANTHROPIC_DEFAULT_BASE_URL, api_key or None, provider="anthropic"
        )
    ollama_base_url = env.get("OLLAMA_BASE_URL", "").strip()
    if ollama_base_url:
        return _endpoint_for_variable("OLLAMA_BASE_URL", ollama_base_url, None, provider="ollama")
    ollama_host = env.get("OLLAMA_HOST", "").strip()
    if ollama_host:
        return _endpoint_for_variable("OLLAMA_HOST", ollama_url_from_host(ollama_host), None, provider="ollama")
    return None


def endpoint_from_env(env: Mapping[str, str] = os.environ) -> LlmEndpoint | None:
    """Return the endpoint configured by environment variables, or None when none is set.

    ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` come first (either one is enough; the base URL defaults to
    OpenAI's). Otherwise ``OLLAMA_BASE_URL`` (the Ollama server root, /v1 is appended) or ``OLLAMA_HOST``
    (``host:port`` as Ollama reads it) select a local Ollama through its OpenAI-compatible API.

    Raises:
        LlmConfigError: a variable is set to an invalid URL.
    """
    openai_base_url = env.get("OPENAI_BASE_URL", "").strip()
    openai_api_key = env.get("OPENAI_API_KEY", "").strip()
    if openai_base_url or openai_api_key:
        base_url = openai_base_url or _OPENAI_DEFAULT_BASE_URL
        return _endpoint_for_variable("OPENAI_BASE_URL", base_url, openai_api_key or None)

    ollama_base_url = env.get("OLLAMA_BASE_URL", "").strip()
    if ollama_base_url:
        return _endpoint_for_variable("OLLAMA_BASE_URL", _with_v1_suffix(ollama_base_url), None)
    ollama_host = env.get("OLLAMA_HOST", "").strip()
    if ollama_host:
        return _endpoint_for_variable("OLLAMA_HOST", _with_v1_suffix(ollama_url_from_host(ollama_host)), None)
    return None


def _endpoint_for_variable(
    variable: str, base_url: str, api_key: str | None, *, provider: Provider = "openai"
) -> LlmEndpoint:
    try:
        return LlmEndpoint(provider=provider, base_url=base_url, api_key=api_key)
    except LlmConfigError as exc:
        raise LlmConfigError(f"environment variable {variable}: {exc.message}") from None


def ollama_url_from_host(host: str) -> str:
    """Return the server root URL for an ``OLLAMA_HOST`` value such as ``0.0.0.0``, ``:11434`` or a full URL.

    A bind-all address (0.0.0.0 or ::) becomes 127.0.0.1, and a missing port becomes 11434 (http only).
    """
    raw = host if "://" in host else f"http://{host}"
    parts = urlsplit(raw)
    hostname = parts.hostname or "127.0.0.1"
    if hostname in ("0.0.0.0", "::"):
        hostname = "127.0.0.1"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    try:
        port = parts.port
    except ValueError:
        raise LlmConfigError(f"environment variable OLLAMA_HOST has an invalid port: {host!r}") from None
    if port is None and parts.scheme == "http":
        port = _OLLAMA_DEFAULT_PORT
    netloc = hostname if port is None else f"{hostname}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def _with_v1_suffix(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"
