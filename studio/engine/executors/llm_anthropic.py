"""Anthropic Messages provider: request body, named server-sent events, plain JSON replies and the model list.

JSON output: a schema whose top-level ``type`` is ``"object"`` becomes the input schema of one tool that the
request forces the model to call (``tool_choice`` of type ``tool``), so the model's arguments are the output.
Tool input schemas must describe an object, so any other schema (an array or a string, for example) is
described in the system prompt instead. Either way ``chat_completion`` parses and validates the reply text
and sends one corrective request when it is invalid.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from studio.engine.executors.llm_errors import LlmConfigError, LlmHttpError, LlmProtocolError, redact
from studio.engine.executors.llm_http import describe_body, exchange, get_json, secrets_of
from studio.engine.executors.llm_openai import iter_sse_events, schema_name
from studio.engine.executors.llm_types import (
    ChatMessage,
    ChatRequest,
    DeltaCallback,
    LlmEndpoint,
    ProviderReply,
    TokenUsage,
    is_token_count,
    output_schema_json,
    parse_tool_call,
)

logger = logging.getLogger(__name__)

# The Messages API requires max_tokens; this is sent when the request sets none.
DEFAULT_MAX_TOKENS = 4096
# Anthropic accepts temperatures from 0 to 1, not up to 2 as OpenAI does.
_MAX_TEMPERATURE = 1.0
# Anthropic's stop reasons mapped to the OpenAI names that chat_completion reads ("length" means cut off).
_FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "stop", "max_tokens": "length"}
# Error types of an ``error`` event mapped to the HTTP status the same failure gets outside a stream.
_ERROR_STATUSES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
# Largest page the model list accepts; more pages are fetched while has_more is true.
_MODELS_PAGE_LIMIT = 1000
_MAX_MODEL_PAGES = 100
# Anthropic rejects empty text blocks, so an empty earlier reply is sent as this text.
_EMPTY_REPLY_PLACEHOLDER = "(empty reply)"


async def complete_anthropic(
    client: httpx.AsyncClient,
    endpoint: LlmEndpoint,
    request: ChatRequest,
    messages: Sequence[ChatMessage],
    *,
    on_delta: DeltaCallback | None,
    stream: bool,
) -> ProviderReply:
    """Send one Messages request and return the reply, streamed or not."""
    body = build_body(request, messages, stream=stream)
    url = endpoint.chat_url
    output_tool = output_tool_name(body) if request.output_schema is not None else None

    async def read_stream(response: httpx.Response) -> ProviderReply:
        return await read_event_stream(
            response, url=url, output_tool=output_tool, on_delta=on_delta, secrets=secrets_of(endpoint)
        )

    return await exchange(
        client,
        endpoint,
        body,
        stream=stream,
        stream_media_type="text/event-stream",
        read_stream=read_stream,
        parse_reply=lambda raw, content_type: parse_json_reply(raw, content_type, url=url, output_tool=output_tool),
        on_delta=on_delta,
        output_schema_requested=request.output_schema is not None,
    )


def build_body(request: ChatRequest, messages: Sequence[ChatMessage], *, stream: bool) -> dict[str, Any]:
    """Return the JSON body of a Messages request: system messages move to the top-level ``system`` field.

    Raises:
        LlmConfigError: the temperature is above Anthropic's maximum of 1.
    """
    system_parts = [message["content"] for message in messages if message["role"] == "system"]
    turns = [_turn(message) for message in messages if message["role"] != "system"]
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": turns,
        "stream": stream,
    }
    if request.temperature is not None:
        if request.temperature > _MAX_TEMPERATURE:
            raise LlmConfigError(
                f"temperature {request.temperature} is above Anthropic's maximum of 1; set a value from 0 to 1"
            )
        body["temperature"] = request.temperature
    if request.output_schema is not None:
        schema = output_schema_json(request.output_schema)
        if isinstance(schema, dict) and schema.get("type") == "object":
            name = schema_name(request.output_schema)
            description = "Return the reply as this tool's input; its input schema is the required output format."
            body["tools"] = [{"name": name, "description": description, "input_schema": schema}]
            body["tool_choice"] = {"type": "tool", "name": name}
        else:
            system_parts.append(
                "Reply with only a JSON value, with no other text, that matches this JSON Schema: "
                + json.dumps(schema, ensure_ascii=False)
            )
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.tools:
        body["tools"] = [
            {"name": tool.name, "description": tool.description, "input_schema": tool.parameters_json()}
            for tool in request.tools
        ]
        body["tool_choice"] = _tool_choice(request.tool_choice or "auto")
    if system_parts:
        body["system"] = "\n\n".join(system_parts)
    return body


def _tool_choice(choice: str) -> dict[str, str]:
    """Return Anthropic's tool_choice object. Its "any" is what the other providers call "required"."""
    if choice == "required":
        return {"type": "any"}
    if choice in ("auto", "none"):
        return {"type": choice}
    return {"type": "tool", "name": choice}


def _turn(message: ChatMessage) -> dict[str, str]:
    content = message["content"]
    if not content.strip():
        content = _EMPTY_REPLY_PLACEHOLDER
    return {"role": message["role"], "content": content}


def output_tool_name(body: Mapping[str, Any]) -> str | None:
    """Return the name of the tool a request body forces for JSON output, or None."""
    tool_choice = body.get("tool_choice")
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "tool":
        name = tool_choice.get("name")
        return name if isinstance(name, str) else None
    return None


@dataclass
class _ToolUse:
    """A tool_use block of one of the request's tools: its input arrives as JSON text or, unstreamed, as an object."""

    call_id: str
    name: str
    json_parts: list[str] = field(default_factory=list)
    input_object: object = None


@dataclass
class _StreamState:
    output_tool: str | None
    text_parts: list[str] = field(default_factory=list)
    tool_json_parts: list[str] = field(default_factory=list)
    # Kind of each content block by index: "text", "output" (the forced tool), "tool" (a request tool) or "other".
    block_kinds: dict[int, str] = field(default_factory=dict)
    tool_uses: dict[int, _ToolUse] = field(default_factory=dict)
    saw_output_tool: bool = False
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None
    stop_reason: str | None = None
    stopped: bool = False

    def reply(self, url: str) -> ProviderReply:
        text = "".join(self.tool_json_parts) if self.saw_output_tool else "".join(self.text_parts)
        usage = None
        if self.input_tokens is not None and self.output_tokens is not None:
            usage = TokenUsage(self.input_tokens, self.output_tokens, self.input_tokens + self.output_tokens)
        calls = tuple(
            parse_tool_call(use.call_id, use.name, "".join(use.json_parts) or use.input_object, url=url)
            for use in self.tool_uses.values()
        )
        reason = "tool_calls" if calls and self.stop_reason == "tool_use" else finish_reason(self.stop_reason)
        return ProviderReply(text=text, usage=usage, model=self.model, finish_reason=reason, tool_calls=calls)


async def read_event_stream(
    response: httpx.Response,
    *,
    url: str,
    output_tool: str | None,
    on_delta: DeltaCallback | None,
    secrets: list[str | None],
) -> ProviderReply:
    """Read a Messages event stream up to ``message_stop`` and return the joined reply.

    Text deltas and the forced output tool's JSON fragments both go to ``on_delta`` as they arrive.

    Raises:
        LlmProtocolError: a line that is not SSE, event data that is not a JSON object, or a stream that
            ends before ``message_stop``.
        LlmHttpError: the server sent an ``error`` event.
    """
    state = _StreamState(output_tool=output_tool)
    async for event_name, data in iter_sse_events(response.aiter_lines(), url=url):
        event = _decode_event(data, url)
        event_type = event_name if event_name != "message" else str(event.get("type", ""))
        if event_type == "error":
            raise stream_error(event, url, secrets)
        _apply_event(state, event_type, event, on_delta)
        if state.stopped:
            break

    if not state.stopped:
        raise LlmProtocolError(
            f"LLM server at {url} ended the stream before the message_stop event; the reply may be cut off",
            retryable=True,
        )
    return state.reply(url)


def _decode_event(data: str, url: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except ValueError:
        raise LlmProtocolError(
            f"LLM server at {url} sent event data that is not JSON: {describe_body(data.encode(), '')}"
        ) from None
    if not isinstance(event, dict):
        raise LlmProtocolError(f"LLM server at {url} sent event data that is not a JSON object: {data[:100]}")
    return event


def _apply_event(
    state: _StreamState, event_type: str, event: Mapping[str, Any], on_delta: DeltaCallback | None
) -> None:
    if event_type == "message_start":
        message = event.get("message")
        if isinstance(message, dict):
            if isinstance(message.get("model"), str):
                state.model = message["model"]
            _apply_usage(state, message.get("usage"))
    elif event_type == "content_block_start":
        _start_block(state, event, on_delta)
    elif event_type == "content_block_delta":
        _apply_delta(state, event, on_delta)
    elif event_type == "message_delta":
        delta = event.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
            state.stop_reason = delta["stop_reason"]
        _apply_usage(state, event.get("usage"))
    elif event_type == "message_stop":
        state.stopped = True
    # ping, content_block_stop and event types added to the API later carry nothing this client needs.


def _start_block(state: _StreamState, event: Mapping[str, Any], on_delta: DeltaCallback | None) -> None:
    block = event.get("content_block")
    index = event.get("index", 0)
    if not isinstance(block, dict) or not isinstance(index, int):
        return
    if block.get("type") == "text":
        state.block_kinds[index] = "text"
        _add_text(state, block.get("text"), on_delta)
    elif block.get("type") == "tool_use" and state.output_tool is not None and block.get("name") == state.output_tool:
        state.block_kinds[index] = "output"
        state.saw_output_tool = True
    elif block.get("type") == "tool_use" and isinstance(block.get("name"), str):
        state.block_kinds[index] = "tool"
        block_id = block.get("id")
        call_id = block_id if isinstance(block_id, str) else f"toolu_{index}"
        state.tool_uses[index] = _ToolUse(call_id=call_id, name=block["name"], input_object=block.get("input"))
    else:
        state.block_kinds[index] = "other"


def _apply_delta(state: _StreamState, event: Mapping[str, Any], on_delta: DeltaCallback | None) -> None:
    delta = event.get("delta")
    kind = state.block_kinds.get(event.get("index", 0), "text")
    if not isinstance(delta, dict):
        return
    if delta.get("type") == "text_delta" and kind == "text":
        _add_text(state, delta.get("text"), on_delta)
    elif delta.get("type") == "input_json_delta" and kind == "output":
        fragment = delta.get("partial_json")
        if isinstance(fragment, str) and fragment:
            state.tool_json_parts.append(fragment)
            if on_delta is not None:
                on_delta(fragment)
    elif delta.get("type") == "input_json_delta" and kind == "tool":
        fragment = delta.get("partial_json")
        if isinstance(fragment, str):
            state.tool_uses[event.get("index", 0)].json_parts.append(fragment)


def _add_text(state: _StreamState, text: object, on_delta: DeltaCallback | None) -> None:
    if isinstance(text, str) and text:
        state.text_parts.append(text)
        if on_delta is not None:
            on_delta(text)


def _apply_usage(state: _StreamState, usage: object) -> None:
    """Take the counts of a usage object; message_delta's output_tokens is a running total, not an increment."""
    if not isinstance(usage, dict):
        return
    input_tokens = _input_tokens(usage)
    if input_tokens is not None:
        state.input_tokens = input_tokens
    if is_token_count(usage.get("output_tokens")):
        state.output_tokens = usage["output_tokens"]


def _input_tokens(usage: Mapping[str, Any]) -> int | None:
    """Return all prompt tokens: the uncached ones plus those written to and read from the prompt cache."""
    if not is_token_count(usage.get("input_tokens")):
        return None
    total: int = usage["input_tokens"]
    for key in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        if is_token_count(usage.get(key)):
            total += usage[key]
    return total


def stream_error(event: Mapping[str, Any], url: str, secrets: list[str | None]) -> LlmHttpError:
    """Return the error for an ``error`` event, with the status the same failure gets outside a stream."""
    error = event.get("error")
    error_type = error.get("type") if isinstance(error, dict) else None
    status = _ERROR_STATUSES.get(error_type, 500) if isinstance(error_type, str) else 500
    excerpt = redact(describe_body(json.dumps(event).encode(), "application/json"), secrets)
    retryable = status in (429, 500, 529)
    hint = "the server reported an error inside the stream"
    return LlmHttpError(status, excerpt, url=url, hint=hint, retryable=retryable)


def finish_reason(stop_reason: str | None) -> str | None:
    """Return the OpenAI-style finish reason for an Anthropic stop reason; unknown ones pass through."""
    if stop_reason is None:
        return None
    return _FINISH_REASONS.get(stop_reason, stop_reason)


def parse_json_reply(raw: bytes, content_type: str, *, url: str, output_tool: str | None) -> ProviderReply:
    """Parse a non-streamed ``message`` object.

    Raises:
        LlmProtocolError: the body is not JSON (an HTML page, for example) or has no ``content`` list.
    """
    try:
        data = json.loads(raw)
    except ValueError:
        raise LlmProtocolError(
            f"LLM server at {url} did not send a JSON reply ({describe_body(raw, content_type)}); "
            "check that the base URL is the API's root, such as https://api.anthropic.com"
        ) from None
    content = data.get("content") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(content, list):
        raise LlmProtocolError(f"LLM server at {url} sent a reply without a 'content' list: {raw[:200]!r}")
    state = _StreamState(output_tool=output_tool)
    text_parts: list[str] = []
    tool_input: str | None = None
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            text_parts.append(block["text"])
        elif block.get("type") == "tool_use" and output_tool is not None and block.get("name") == output_tool:
            tool_input = json.dumps(block.get("input"), ensure_ascii=False)
        elif block.get("type") == "tool_use":
            _start_block(state, {"index": index, "content_block": block}, None)
    _apply_usage(state, data.get("usage"))
    state.model = data["model"] if isinstance(data.get("model"), str) else None
    state.stop_reason = data["stop_reason"] if isinstance(data.get("stop_reason"), str) else None
    state.text_parts = text_parts
    if tool_input is not None:
        state.saw_output_tool = True
        state.tool_json_parts = [tool_input]
    return state.reply(url)


async def list_anthropic_models(client: httpx.AsyncClient, endpoint: LlmEndpoint) -> list[str]:
    """Return the ids of all models the Anthropic API offers, following the list's pages.

    Raises:
        LlmProtocolError: a page is not a JSON object with a ``data`` list.
        LlmError: the request failed; see the subclasses in llm_errors.
    """
    url = endpoint.models_url
    params = {"limit": str(_MODELS_PAGE_LIMIT)}
    names: list[str] = []
    for _ in range(_MAX_MODEL_PAGES):
        page = await get_json(client, endpoint, url, params=params)
        data = page.get("data")
        if not isinstance(data, list):
            raise LlmProtocolError(f"LLM server at {url} sent a model list without a 'data' list")
        names.extend(str(model["id"]) for model in data if isinstance(model, dict) and "id" in model)
        last_id = page.get("last_id")
        if page.get("has_more") is not True or not isinstance(last_id, str) or last_id == params.get("after_id"):
            return names
        params = {"limit": str(_MODELS_PAGE_LIMIT), "after_id": last_id}
    logger.warning(
        "LLM server at %s listed more than %d pages of models; keeping the first pages", url, _MAX_MODEL_PAGES
    )
    return names
