"""Ollama native chat provider: ``/api/chat`` request body, newline-delimited JSON stream and the model list.

JSON output uses Ollama's ``format`` field with the output schema, which constrains the model's sampling
to the schema; ``chat_completion`` still validates the reply.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from studio.engine.executors.llm_errors import LlmHttpError, LlmProtocolError, redact
from studio.engine.executors.llm_http import describe_body, exchange, get_json, secrets_of
from studio.engine.executors.llm_types import (
    ChatMessage,
    ChatRequest,
    DeltaCallback,
    LlmEndpoint,
    ProviderReply,
    TokenUsage,
    ToolCall,
    is_token_count,
    output_schema_json,
    parse_tool_call,
)

logger = logging.getLogger(__name__)


async def complete_ollama(
    client: httpx.AsyncClient,
    endpoint: LlmEndpoint,
    request: ChatRequest,
    messages: Sequence[ChatMessage],
    *,
    on_delta: DeltaCallback | None,
    stream: bool,
) -> ProviderReply:
    """Send one ``/api/chat`` request and return the reply, streamed or not."""
    url = endpoint.chat_url
    secrets = secrets_of(endpoint)

    async def read_stream(response: httpx.Response) -> ProviderReply:
        return await read_line_stream(
            response.aiter_lines(), status=response.status_code, url=url, on_delta=on_delta, secrets=secrets
        )

    return await exchange(
        client,
        endpoint,
        build_body(request, messages, stream=stream),
        stream=stream,
        stream_media_type="ndjson",
        read_stream=read_stream,
        parse_reply=lambda raw, content_type: parse_json_reply(raw, content_type, url=url, secrets=secrets),
        on_delta=on_delta,
        output_schema_requested=request.output_schema is not None,
    )


def build_body(request: ChatRequest, messages: Sequence[ChatMessage], *, stream: bool) -> dict[str, Any]:
    """Return the JSON body of an ``/api/chat`` request; sampling settings go in ``options``."""
    body: dict[str, Any] = {"model": request.model, "messages": list(messages), "stream": stream}
    options: dict[str, Any] = {}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    if request.stop:
        options["stop"] = list(request.stop)
    if options:
        body["options"] = options
    if request.output_schema is not None:
        body["format"] = output_schema_json(request.output_schema)
    # Ollama has no tool_choice: "none" sends no tools, and the other choices leave the decision to the model.
    if request.tools and request.tool_choice != "none":
        if request.tool_choice not in (None, "auto"):
            logger.debug("Ollama has no tool_choice; tool choice %r is sent as 'auto'", request.tool_choice)
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters_json()},
            }
            for tool in request.tools
        ]
    return body


@dataclass
class _ReplyState:
    text_parts: list[str] = field(default_factory=list)
    usage: TokenUsage | None = None
    model: str | None = None
    finish_reason: str | None = None
    done: bool = False
    tool_calls: list[ToolCall] = field(default_factory=list)

    def reply(self) -> ProviderReply:
        # Ollama ends a reply with tool calls with done_reason "stop", so the OpenAI name "tool_calls" replaces it.
        reason = "tool_calls" if self.tool_calls and self.finish_reason == "stop" else self.finish_reason
        return ProviderReply(
            text="".join(self.text_parts),
            usage=self.usage,
            model=self.model,
            finish_reason=reason,
            tool_calls=tuple(self.tool_calls),
        )


async def read_line_stream(
    lines: AsyncIterator[str], *, status: int, url: str, on_delta: DeltaCallback | None, secrets: list[str | None]
) -> ProviderReply:
    """Read newline-delimited JSON objects up to the one with ``done: true`` and return the joined reply.

    Raises:
        LlmProtocolError: a line that is not a JSON object, or a stream that ends before ``done: true``.
        LlmHttpError: the server sent an ``error`` object inside the stream.
    """
    state = _ReplyState()
    async for line in lines:
        if not line.strip():
            continue
        chunk = _decode_line(line, url)
        _apply_chunk(state, chunk, status=status, url=url, on_delta=on_delta, secrets=secrets)
        if state.done:
            return state.reply()
    raise LlmProtocolError(
        f"LLM server at {url} ended the stream before the object with 'done: true'; the reply may be cut off",
        retryable=True,
    )


def _decode_line(line: str, url: str) -> dict[str, Any]:
    try:
        chunk = json.loads(line)
    except ValueError:
        raise LlmProtocolError(
            f"LLM server at {url} sent a stream line that is not JSON: {describe_body(line.encode(), '')}; "
            "check that the base URL is the Ollama server root, such as http://127.0.0.1:11434"
        ) from None
    if not isinstance(chunk, dict):
        raise LlmProtocolError(f"LLM server at {url} sent a stream line that is not a JSON object: {line[:100]}")
    return chunk


def _apply_chunk(
    state: _ReplyState,
    chunk: Mapping[str, Any],
    *,
    status: int,
    url: str,
    on_delta: DeltaCallback | None,
    secrets: list[str | None],
) -> None:
    if "error" in chunk:
        excerpt = redact(describe_body(json.dumps(chunk).encode(), "application/json"), secrets)
        # An error after the stream started (a stopped model runner, for example) may not recur on another try.
        hint = "the server reported an error inside the stream"
        raise LlmHttpError(status, excerpt, url=url, hint=hint, retryable=True)
    if isinstance(chunk.get("model"), str):
        state.model = chunk["model"]
    message = chunk.get("message")
    if message is not None and not isinstance(message, dict):
        raise LlmProtocolError(f"LLM server at {url} sent a 'message' that is not an object: {message!r:.100}")
    content = message.get("content") if message else None
    if isinstance(content, str) and content:
        state.text_parts.append(content)
        if on_delta is not None:
            on_delta(content)
    if message and message.get("tool_calls") is not None:
        _add_tool_calls(state, message["tool_calls"], url)
    if chunk.get("done") is True:
        state.done = True
        state.usage = parse_usage(chunk)
        reason = chunk.get("done_reason")
        state.finish_reason = reason if isinstance(reason, str) else "stop"


def _add_tool_calls(state: _ReplyState, value: object, url: str) -> None:
    """Add a message's ``tool_calls``. Ollama sends each call whole, with its arguments as an object."""
    if not isinstance(value, list):
        raise LlmProtocolError(f"LLM server at {url} sent 'tool_calls' that is not a list: {value!r:.200}")
    for entry in value:
        function = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise LlmProtocolError(f"LLM server at {url} sent a tool call without a function name: {entry!r:.200}")
        call_id = entry.get("id") if isinstance(entry.get("id"), str) else f"call_{len(state.tool_calls)}"
        state.tool_calls.append(parse_tool_call(call_id, function["name"], function.get("arguments"), url=url))


def parse_usage(chunk: Mapping[str, Any]) -> TokenUsage | None:
    """Return the token counts of a final object, or None when ``prompt_eval_count`` or ``eval_count`` is missing.

    Ollama releases of 2024 left out ``prompt_eval_count`` when the prompt came from the cache. The caller
    then estimates the usage.
    """
    prompt = chunk.get("prompt_eval_count")
    completion = chunk.get("eval_count")
    if not is_token_count(prompt) or not is_token_count(completion):
        return None
    return TokenUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def parse_json_reply(raw: bytes, content_type: str, *, url: str, secrets: list[str | None]) -> ProviderReply:
    """Parse a non-streamed ``/api/chat`` reply: one JSON object with ``done: true``.

    Raises:
        LlmProtocolError: the body is not a JSON object (an HTML page, for example) or is not finished.
    """
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise LlmProtocolError(
            f"LLM server at {url} did not send a JSON reply ({describe_body(raw, content_type)}); "
            "check that the base URL is the Ollama server root, such as http://127.0.0.1:11434"
        )
    state = _ReplyState()
    _apply_chunk(state, data, status=200, url=url, on_delta=None, secrets=secrets)
    if not state.done:
        raise LlmProtocolError(f"LLM server at {url} sent a reply without 'done: true': {raw[:200]!r}")
    return state.reply()


async def list_ollama_models(client: httpx.AsyncClient, endpoint: LlmEndpoint) -> list[str]:
    """Return the names of the models pulled on the Ollama server, such as ``llama3.2:latest``.

    Raises:
        LlmProtocolError: the reply is not a JSON object with a ``models`` list.
        LlmError: the request failed; see the subclasses in llm_errors.
    """
    url = endpoint.models_url
    data = await get_json(client, endpoint, url)
    models = data.get("models")
    if not isinstance(models, list):
        raise LlmProtocolError(f"LLM server at {url} sent a model list without a 'models' list")
    names: list[str] = []
    for model in models:
        if isinstance(model, dict):
            name = model.get("name", model.get("model"))
            if isinstance(name, str):
                names.append(name)
    return names
