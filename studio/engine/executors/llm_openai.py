"""OpenAI Chat Completions provider: request body, server-sent event stream and plain JSON reply parsing."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import httpx

from studio.engine.executors.llm_errors import LlmHttpError, LlmProtocolError, redact
from studio.engine.executors.llm_http import describe_body, open_response, secrets_of
from studio.engine.executors.llm_types import ChatRequest, LlmEndpoint, ProviderReply, TokenUsage, output_schema_json

logger = logging.getLogger(__name__)

ChatMessage = dict[str, str]
DeltaCallback = Callable[[str], None]

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
    body = build_body(request, messages, stream=stream)
    url = endpoint.chat_completions_url
    async with open_response(
        client, endpoint, body, stream=stream, output_schema_requested=request.output_schema is not None
    ) as response:
        content_type = response.headers.get("content-type", "").lower()
        if stream and "text/event-stream" in content_type:
            return await read_event_stream(response, url=url, on_delta=on_delta, secrets=secrets_of(endpoint))
        if stream and "json" in content_type:
            logger.debug("LLM server at %s ignored stream=true and sent one JSON reply", url)
        reply = parse_json_reply(await response.aread(), content_type, url=url)
        if on_delta is not None and reply.text:
            on_delta(reply.text)
        return reply


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
    if request.output_schema is not None:
        json_schema = {"name": schema_name(request.output_schema), "schema": output_schema_json(request.output_schema)}
        body["response_format"] = {"type": "json_schema", "json_schema": json_schema}
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
class _StreamState:
    text_parts: list[str] = field(default_factory=list)
    usage: TokenUsage | None = None
    model: str | None = None
    finish_reason: str | None = None
    saw_tool_calls: bool = False


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
    return ProviderReply(
        text="".join(state.text_parts), usage=state.usage, model=state.model, finish_reason=state.finish_reason
    )


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
    if delta.get("tool_calls") and not state.saw_tool_calls:
        # TODO: tool calls are not supported yet; their argument fragments are dropped.
        state.saw_tool_calls = True
        logger.debug("LLM server at %s sent tool-call deltas; ignoring them", url)
    content = delta.get("content")
    if isinstance(content, str) and content:
        state.text_parts.append(content)
        if on_delta is not None:
            on_delta(content)


def parse_json_reply(raw: bytes, content_type: str, *, url: str) -> ProviderReply:
    """Parse a non-streamed ``chat.completion`` object.

    Raises:
        LlmProtocolError: the body is not JSON (an HTML page, for example) or lacks ``choices[0].message``.
    """
    try:
        data = json.loads(raw)
    except ValueError:
        raise LlmProtocolError(
            f"LLM server at {url} sent {describe_body(raw, content_type)} instead of a JSON reply; "
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
    )


def parse_usage(value: object) -> TokenUsage | None:
    """Return the token counts of a ``usage`` object, or None when it is missing or incomplete."""
    if not isinstance(value, dict):
        return None
    prompt = value.get("prompt_tokens")
    completion = value.get("completion_tokens")
    if not _is_count(prompt) or not _is_count(completion):
        return None
    total = value.get("total_tokens")
    return TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total if _is_count(total) else prompt + completion,
    )


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
