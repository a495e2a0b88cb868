"""Loopback HTTP server speaking the Anthropic Messages API, with replies scripted per test.

It shares the machinery of ``tests.fakes.llm_server_base`` (uvicorn on 127.0.0.1 at a free port in a
background thread, the script of behaviours, request recording, hang and disconnect tracking), so the
behaviour classes of ``tests.fakes.openai_server`` work here too.

Usage::

    with anthropic_server(api_key="sk-ant-test") as server:
        server.script(overloaded(retry_after="0.05"), TextReply("Hello there"))
        endpoint = LlmEndpoint("anthropic", server.base_url, api_key="sk-ant-test")
        ...
        assert server.chat_requests[-1].json["max_tokens"] == 4096

Routes: ``POST /v1/messages`` (named server-sent events when the body has ``"stream": true``),
``GET /v1/models`` (paged with ``limit`` and ``after_id``), and a JSON 404 for any other path. Requests
without the ``anthropic-version`` header get HTTP 400, and with ``api_key`` set, requests whose
``x-api-key`` differs get HTTP 401 with the received key echoed in the body (to test redaction).

Behaviours: ``TextReply`` (its ``finish_reason`` "stop" becomes stop reason ``end_turn`` and "length"
becomes ``max_tokens``), ``json_reply``, ``RawReply`` and its helpers, ``RawStream``, ``Hang``, and
``StreamError`` (some text, then an ``error`` event). When the request forces a tool (``tool_choice`` of
type ``tool``), a ``TextReply``'s text is sent as that tool's input: in ``input_json_delta`` fragments when
streaming, or parsed into the ``input`` object otherwise (text that is not JSON is sent as a text block).
A ``TextReply``'s ``tool_calls`` become ``tool_use`` blocks after the text, with stop reason ``tool_use``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from tests.fakes.llm_server_base import BehaviourSource, FakeLlmServer, RawReply, RecordedRequest, TextReply

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


@dataclass(frozen=True)
class StreamError:
    """A streamed reply that sends ``text_before`` and then an ``error`` event of ``error_type``."""

    text_before: str = "Partial "
    error_type: str = "overloaded_error"
    message: str = "Overloaded"


def anthropic_error(status: int, error_type: str, message: str, headers: Mapping[str, str] | None = None) -> RawReply:
    """Return an Anthropic-style error reply: ``{"type": "error", "error": {"type": ..., "message": ...}}``."""
    body = json.dumps({"type": "error", "error": {"type": error_type, "message": message}})
    return RawReply(status, body, headers=dict(headers or {}))


def overloaded(retry_after: str | None = None) -> RawReply:
    """Return Anthropic's HTTP 529 "overloaded" reply, with a retry-after header when given."""
    headers = {} if retry_after is None else {"retry-after": retry_after}
    return anthropic_error(529, "overloaded_error", "Overloaded", headers)


def rate_limited(retry_after: str | None = "0.05") -> RawReply:
    """Return an HTTP 429 reply, with a retry-after header unless ``retry_after`` is None."""
    headers = {} if retry_after is None else {"retry-after": retry_after}
    return anthropic_error(429, "rate_limit_error", "Number of request tokens has exceeded your rate limit", headers)


def server_error(status: int = 500, retry_after: str | None = None) -> RawReply:
    """Return an HTTP 5xx ``api_error`` reply, with a retry-after header when given."""
    headers = {} if retry_after is None else {"retry-after": retry_after}
    return anthropic_error(status, "api_error", "Internal server error", headers)


class FakeAnthropicServer(FakeLlmServer):
    """The running server: its root URL, the requests it received, and its script of replies."""

    chat_path = "/v1/messages"

    def _routes(self) -> list[BaseRoute]:
        return [
            Route(self.chat_path, self._chat, methods=["POST"]),
            Route("/v1/models", self._list_models, methods=["GET"]),
        ]

    def _unauthorized(self, recorded: RecordedRequest) -> Response | None:
        if "anthropic-version" not in recorded.headers:
            body = {"type": "error", "error": {"type": "invalid_request_error", "message": "missing anthropic-version"}}
            return JSONResponse(body, status_code=400)
        received = recorded.headers.get("x-api-key", "")
        if self._api_key is None or received == self._api_key:
            return None
        body = {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {received}"}}
        return JSONResponse(body, status_code=401)

    async def _list_models(self, request: Request) -> Response:
        _recorded, denied = await self._accept(request)
        if denied is not None:
            return denied
        limit = int(request.query_params.get("limit", "20"))
        after_id = request.query_params.get("after_id")
        start = self._models.index(after_id) + 1 if after_id in self._models else 0
        page = self._models[start : start + limit]
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"} for m in page]
        return JSONResponse(
            {
                "data": data,
                "has_more": start + limit < len(self._models),
                "first_id": page[0] if page else None,
                "last_id": page[-1] if page else None,
            }
        )

    def _other_behaviour(self, behaviour: Any, payload: Mapping[str, Any]) -> Response:
        if isinstance(behaviour, StreamError):
            return StreamingResponse(self._error_stream(behaviour, payload), media_type=self.stream_media_type)
        return super()._other_behaviour(behaviour, payload)

    # --- reply bodies ----------------------------------------------------------------------

    def _usage(self, reply: TextReply, payload: Mapping[str, Any]) -> tuple[int, int]:
        texts = [str(payload.get("system", ""))]
        texts += [str(m.get("content", "")) for m in payload.get("messages", []) if isinstance(m, dict)]
        return self._word_usage(reply, texts)

    def _reply_body(self, reply: TextReply, payload: Mapping[str, Any]) -> dict[str, Any]:
        tool = _forced_tool(payload)
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}]
        if tool is not None:
            with suppress(ValueError):
                content = [{"type": "tool_use", "id": "toolu_1", "name": tool, "input": json.loads(reply.text)}]
        for index, (name, arguments) in enumerate(reply.tool_calls):
            content.append({"type": "tool_use", "id": f"toolu_{index}", "name": name, "input": json.loads(arguments)})
        body: dict[str, Any] = {
            "id": f"msg_{next(self._ids)}",
            "type": "message",
            "role": "assistant",
            "content": content,
            "model": reply.model or payload.get("model", ""),
            "stop_reason": self._stop_reason(reply, tool),
            "stop_sequence": None,
        }
        if reply.send_usage:
            prompt, completion = self._usage(reply, payload)
            body["usage"] = {"input_tokens": prompt, "output_tokens": completion}
        return body

    @staticmethod
    def _stop_reason(reply: TextReply, tool: str | None) -> str:
        if (tool is not None or reply.tool_calls) and reply.finish_reason == "stop":
            return "tool_use"
        return _STOP_REASONS.get(reply.finish_reason, reply.finish_reason)

    def _stream_opening(self, reply: TextReply, payload: Mapping[str, Any], stream_id: int) -> list[str]:
        tool = _forced_tool(payload)
        prompt, _completion = self._usage(reply, payload)
        if tool is None:
            block: dict[str, Any] = {"type": "text", "text": ""}
        else:
            block = {"type": "tool_use", "id": "toolu_1", "name": tool, "input": {}}
        return [
            self._message_start(reply, payload, stream_id, prompt if reply.send_usage else None),
            _event("content_block_start", {"index": 0, "content_block": block}),
            _event("ping", {}),
        ]

    def _stream_piece(self, reply: TextReply, payload: Mapping[str, Any], stream_id: int, piece: str) -> str:
        delta = {"type": "text_delta", "text": piece}
        if _forced_tool(payload) is not None:
            delta = {"type": "input_json_delta", "partial_json": piece}
        return _event("content_block_delta", {"index": 0, "delta": delta})

    def _stream_closing(self, reply: TextReply, payload: Mapping[str, Any], stream_id: int) -> list[str]:
        _prompt, completion = self._usage(reply, payload)
        closing = [_event("content_block_stop", {"index": 0})]
        closing += list(_tool_use_events(reply.tool_calls))
        message_delta: dict[str, Any] = {"delta": {"stop_reason": self._stop_reason(reply, _forced_tool(payload))}}
        if reply.send_usage:
            message_delta["usage"] = {"output_tokens": completion}
        closing += [_event("message_delta", message_delta), _event("message_stop", {})]
        return closing

    def _message_start(
        self, reply: TextReply, payload: Mapping[str, Any], stream_id: int, input_tokens: int | None
    ) -> str:
        message: dict[str, Any] = {
            "id": f"msg_{stream_id}",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": reply.model or payload.get("model", ""),
            "stop_reason": None,
        }
        if input_tokens is not None:
            message["usage"] = {"input_tokens": input_tokens, "output_tokens": 1}
        return _event("message_start", {"message": message})

    async def _error_stream(self, behaviour: StreamError, payload: Mapping[str, Any]) -> AsyncIterator[str]:
        yield self._message_start(TextReply(""), payload, next(self._ids), 1)
        yield _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        yield _event(
            "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": behaviour.text_before}}
        )
        yield _event("error", {"error": {"type": behaviour.error_type, "message": behaviour.message}})


def _tool_use_events(tool_calls: Sequence[tuple[str, str]]) -> Iterator[str]:
    """Yield the events of one tool_use block per call, its input JSON in two fragments."""
    for offset, (name, arguments) in enumerate(tool_calls):
        index = offset + 1
        block = {"type": "tool_use", "id": f"toolu_{offset}", "name": name, "input": {}}
        yield _event("content_block_start", {"index": index, "content_block": block})
        middle = len(arguments) // 2
        for fragment in (arguments[:middle], arguments[middle:]):
            delta = {"type": "input_json_delta", "partial_json": fragment}
            yield _event("content_block_delta", {"index": index, "delta": delta})
        yield _event("content_block_stop", {"index": index})


def _event(name: str, data: Mapping[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"


def _forced_tool(payload: Mapping[str, Any]) -> str | None:
    choice = payload.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool":
        return str(choice.get("name"))
    return None


@contextmanager
def anthropic_server(
    *, api_key: str | None = None, models: Sequence[str] = ("claude-fake",), default: BehaviourSource | None = None
) -> Iterator[FakeAnthropicServer]:
    """Start a fake Anthropic Messages server on 127.0.0.1 and stop it on exit."""
    server = FakeAnthropicServer(api_key=api_key, models=models)
    if default is not None:
        server.set_default(default)
    server.start()
    try:
        yield server
    finally:
        server.close()
