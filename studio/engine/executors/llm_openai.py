"""OpenAI Chat Completions provider: request body, server-sent event stream and plain JSON reply parsing."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from studio.engine.executors.llm_errors import LlmHttpError, LlmProtocolError, redact
from studio.engine.executors.llm_http import describe_body, exchange, secrets_of
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

__all__ = ["ChatMessage", "DeltaCallback", "complete_openai"]

logger = logging.getLogger(__name__)

_SSE_FIELDS = frozenset({"data", "event", "id", "retry"})
_SCHEMA_NAME_PATTERN = re.compile(r"[^A-Za-z0-9_-]")
_MAX_SCHEMA_NAME = 64


async def complete_openai(
    client: httpx.AsyncClient,
    endpoint: LlmEndpoint,
    request: ChatRequest,
    messages: Sequence[ChatMessage],
    *,
    on_delta: DeltaCallback | None,
    stream: bool,
) -> ProviderReply:
    """Send one Chat Completions request and return the reply, streamed or not."""
    url = endpoint.chat_completions_url

    async def read_stream(response: httpx.Response) -> ProviderReply:
        return await read_event_stream(response, url=url, on_delta=on_delta, secrets=secrets_of(endpoint))

    return await exchange(
        client,
        endpoint,
        build_body(request, messages, stream=stream),
        stream=stream,
        stream_media_type="text/event-stream",
        read_stream=read_stream,
        parse_reply=lambda raw, content_type: parse_json_reply(raw, content_type, url=url),
        on_delta=on_delta,
        output_schema_requested=request.output_schema is not None,
    )


def build_body(request: ChatRequest, messages: Sequence[ChatMessage], *, stream: bool) -> dict[str, Any]:
    """Return the JSON body of a Chat Completions request."""
    body: dict[str, Any] = {"model": request.model, "messages": list(messages), "stream": stream}
    if stream:
        # OpenAI sends token usage in streaming mode only when include_usage requests it.
        body["stream_options"] = {"include_usage": True}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.stop:
        body["stop"] = list(request.stop)
    if request.output_schema is not None:
        json_schema = {"name": schema_name(request.output_schema), "schema": output_schema_json(request.output_schema)}
        body["response_format"] = {"type": "json_schema", "json_schema": json_schema}
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters_json()},
            }
            for tool in request.tools
        ]
    if request.tool_choice in ("auto", "required", "none"):
        body["tool_choice"] = request.tool_choice
    elif request.tool_choice is not None:
        body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice}}
    return body


def schema_name(schema: Mapping[str, Any]) -> str:
    """Return the schema's title cleaned to the characters the API accepts in a schema name, or ``output``."""
    title = schema.get("title")
    if isinstance(title, str):
        cleaned = _SCHEMA_NAME_PATTERN.sub("_", title.strip())[:_MAX_SCHEMA_NAME]
        if cleaned.strip("_"):
            return cleaned
    return "output"


@dataclass
class _ToolCallParts:
    """A tool call being streamed: its id and name arrive first, its arguments in string fragments."""

    call_id: str = ""
    name: str = ""
    argument_parts: list[str] = field(default_factory=list)


@dataclass
class _StreamState:
    text_parts: list[str] = field(default_factory=list)
    usage: TokenUsage | None = None
    model: str | None = None
    finish_reason: str | None = None
    # Tool calls by their index in the choice, in order of first appearance.
    tool_calls: dict[int, _ToolCallParts] = field(default_factory=dict)

    def reply(self, url: str) -> ProviderReply:
        calls = tuple(
            parse_tool_call(parts.call_id or f"call_{index}", parts.name, "".join(parts.argument_parts), url=url)
            for index, parts in self.tool_calls.items()
        )
        return ProviderReply(
            text="".join(self.text_parts),
            usage=self.usage,
            model=self.model,
            finish_reason=self.finish_reason,
            tool_calls=calls,
        )


async def read_event_stream(
    response: httpx.Response, *, url: str, on_delta: DeltaCallback | None, secrets: list[str | None]
) -> ProviderReply:
    """Read a Chat Completions SSE stream up to ``data: [DONE]`` and return the joined reply.

    Raises:
        LlmProtocolError: a line that is not SSE, a chunk that is not JSON or lacks ``choices``,
            or a stream that ends with neither ``[DONE]`` nor a finish reason.
        LlmHttpError: the server sent an error object inside the stream.
    """
    state = _StreamState()
    done = False
    async for event, data in iter_sse_events(response.aiter_lines(), url=url):
        if data.strip() == "[DONE]":
            done = True
            break
        chunk = _decode_chunk(data, url)
        if event == "error" or "error" in chunk:
            raise _stream_error(chunk, response.status_code, url, secrets)
        _apply_chunk(state, chunk, url, on_delta)

    if not done and state.finish_reason is None:
        raise LlmProtocolError(
            f"LLM server at {url} ended the stream before 'data: [DONE]' and before any finish reason; "
            "the reply may be cut off",
            retryable=True,
        )
    return state.reply(url)


async def iter_sse_events(lines: AsyncIterator[str], *, url: str) -> AsyncIterator[tuple[str, str]]:
    """Yield ``(event name, data)`` for each server-sent event in ``lines``.

    Follows the SSE line format: ``field: value`` lines, ``:`` comments, a blank line ends an event and
    several ``data`` lines join with newlines. A line with an unknown field raises LlmProtocolError, because
    it means the body is not an event stream at all (an HTML error page, for example).
    """
    event_name = "message"
    data_lines: list[str] = []
    async for line in lines:
        if not line:
            if data_lines:
                yield event_name, "\n".join(data_lines)
            event_name, data_lines = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name not in _SSE_FIELDS:
            raise LlmProtocolError(
                f"LLM server at {url} sent a line that is not a server-sent event: "
                f"{describe_body(line.encode(), '')}; check that the base URL points at the API"
            )
        value = value.removeprefix(" ")
        if name == "data":
            data_lines.append(value)
        elif name == "event":
            event_name = value
    if data_lines:
        yield event_name, "\n".join(data_lines)


def _decode_chunk(data: str, url: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise LlmProtocolError(
            f"LLM server at {url} sent a stream chunk that is not JSON: {describe_body(data.encode(), '')}"
        ) from None
    if not isinstance(chunk, dict):
        raise LlmProtocolError(f"LLM server at {url} sent a stream chunk that is not a JSON object: {data[:100]}")
    return chunk


def _stream_error(chunk: Mapping[str, Any], status: int, url: str, secrets: list[str | None]) -> LlmHttpError:
    excerpt = redact(describe_body(json.dumps(chunk).encode(), "application/json"), secrets)
    # Errors inside a stream are mostly overload or a dropped backend, so another try may succeed.
    return LlmHttpError(status, excerpt, url=url, hint="the server reported an error inside the stream", retryable=True)


def _apply_chunk(state: _StreamState, chunk: Mapping[str, Any], url: str, on_delta: DeltaCallback | None) -> None:
    if isinstance(chunk.get("model"), str):
        state.model = chunk["model"]
    usage = parse_usage(chunk.get("usage"))
    if usage is not None:
        state.usage = usage
    choices = chunk.get("choices")
    if choices is None and usage is not None:
        return
    if not isinstance(choices, list):
        raise LlmProtocolError(f"LLM server at {url} sent a stream chunk without a 'choices' list: {chunk!r:.200}")
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            _apply_choice(state, choice, url, on_delta)


def _apply_choice(state: _StreamState, choice: Mapping[str, Any], url: str, on_delta: DeltaCallback | None) -> None:
    if isinstance(choice.get("finish_reason"), str):
        state.finish_reason = choice["finish_reason"]
    delta = choice.get("delta")
    if delta is None:
        return
    if not isinstance(delta, dict):
        raise LlmProtocolError(f"LLM server at {url} sent a choice whose 'delta' is not an object: {delta!r:.100}")
    tool_calls = delta.get("tool_calls")
    if isinstance(tool_calls, list):
        for fragment in tool_calls:
            _apply_tool_call_fragment(state, fragment, url)
    content = delta.get("content")
    if isinstance(content, str) and content:
        state.text_parts.append(content)
        if on_delta is not None:
            on_delta(content)


def _apply_tool_call_fragment(state: _StreamState, fragment: object, url: str) -> None:
    """Add one entry of a delta's ``tool_calls``. The first entry of a call has its id and name, later ones argument text."""
    if not isinstance(fragment, dict) or not isinstance(fragment.get("index", 0), int):
        raise LlmProtocolError(
            f"LLM server at {url} sent a tool-call delta without an integer index: {fragment!r:.200}"
        )
    parts = state.tool_calls.setdefault(fragment.get("index", 0), _ToolCallParts())
    if isinstance(fragment.get("id"), str):
        parts.call_id = fragment["id"]
    function = fragment.get("function")
    if not isinstance(function, dict):
        return
    if isinstance(function.get("name"), str):
        parts.name += function["name"]
    if isinstance(function.get("arguments"), str):
        parts.argument_parts.append(function["arguments"])


def parse_json_reply(raw: bytes, content_type: str, *, url: str) -> ProviderReply:
    """Parse a non-streamed ``chat.completion`` object.

    Raises:
        LlmProtocolError: the body is not JSON (an HTML page, for example) or lacks ``choices[0].message``.
    """
    try:
        data = json.loads(raw)
    except ValueError:
        raise LlmProtocolError(
            f"LLM server at {url} did not send a JSON reply ({describe_body(raw, content_type)}); "
            "check that the base URL points at the API (it usually ends in /v1)"
        ) from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LlmProtocolError(f"LLM server at {url} sent a reply without 'choices': {raw[:200]!r}")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise LlmProtocolError(f"LLM server at {url} sent a choice without a 'message' object: {raw[:200]!r}")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise LlmProtocolError(f"LLM server at {url} sent message content that is not a string: {content!r:.100}")
    finish_reason = choices[0].get("finish_reason")
    model = data.get("model")
    return ProviderReply(
        text=content or "",
        usage=parse_usage(data.get("usage")),
        model=model if isinstance(model, str) else None,
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        tool_calls=_message_tool_calls(message.get("tool_calls"), url),
    )


def _message_tool_calls(value: object, url: str) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise LlmProtocolError(f"LLM server at {url} sent 'tool_calls' that is not a list: {value!r:.200}")
    calls: list[ToolCall] = []
    for index, entry in enumerate(value):
        function = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise LlmProtocolError(f"LLM server at {url} sent a tool call without a function name: {entry!r:.200}")
        call_id = entry.get("id") if isinstance(entry.get("id"), str) else f"call_{index}"
        calls.append(parse_tool_call(call_id, function["name"], function.get("arguments"), url=url))
    return tuple(calls)


def parse_usage(value: object) -> TokenUsage | None:
    """Return the token counts of a ``usage`` object, or None when it is missing or incomplete."""
    if not isinstance(value, dict):
        return None
    prompt = value.get("prompt_tokens")
    completion = value.get("completion_tokens")
    if not is_token_count(prompt) or not is_token_count(completion):
        return None
    total = value.get("total_tokens")
    return TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total if is_token_count(total) else prompt + completion,
    )
