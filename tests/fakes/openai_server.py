"""Loopback HTTP server speaking the OpenAI Chat Completions protocol, with replies scripted per test.

The server is real: uvicorn serves a Starlette app on 127.0.0.1 (a free port) in a background thread,
so clients talk to it over TCP exactly as they would to OpenAI, a gateway or Ollama's ``/v1``.

Usage::

    from tests.fakes.openai_server import TextReply, json_reply, openai_server, rate_limited

    def test_example() -> None:
        with openai_server(api_key="sk-test") as server:
            server.script(rate_limited(retry_after="0.05"), TextReply("Hello there"))
            ...  # point the client at server.base_url (http://127.0.0.1:PORT/v1)
            assert server.chat_requests[-1].json["model"] == "m"

    # or as a fixture:
    @pytest.fixture
    def llm_server() -> Iterator[FakeOpenAIServer]:
        with openai_server() as server:
            yield server

Routes: ``POST /v1/chat/completions`` (streaming when the body has ``"stream": true``, with the usage chunk
when ``stream_options.include_usage`` is true), ``GET /v1/models``, and a JSON 404 for any other path.

Each chat request takes the next scripted behaviour. When the script is used up, the default behaviour
applies: an echo of the last user message, or whatever ``set_default`` installed. Behaviours:

- ``TextReply(text, ...)``: a reply, streamed word by word; options for delay between chunks, a stall after
  N chunks (the stream stays open until the client leaves), finish reason, usage, tool-call deltas.
- ``json_reply(value)``: a ``TextReply`` whose text is ``value`` as JSON.
- ``RawReply(status, body, content_type, headers)``: any fixed HTTP reply; helpers ``rate_limited``,
  ``server_error``, ``error_json`` and ``html_page`` build common ones.
- ``RawStream(lines)``: a 200 ``text/event-stream`` reply made of the given raw lines (for malformed SSE).
- ``Hang()``: no reply at all until the client disconnects or the server closes.

``server.requests`` records every request (method, path, headers, body); ``server.aborted`` is set and
``server.aborted_count`` grows when a client disconnects before a reply was complete. The machinery
shared with the Anthropic and Ollama fakes is in ``tests.fakes.llm_server_base``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.llm_server_base import (
    Behaviour,
    BehaviourSource,
    FakeLlmServer,
    Hang,
    RawReply,
    RawStream,
    RecordedRequest,
    TextReply,
    echo_last_user_message,
)

__all__ = [
    "Behaviour",
    "BehaviourSource",
    "FakeOpenAIServer",
    "Hang",
    "RawReply",
    "RawStream",
    "RecordedRequest",
    "TextReply",
    "echo_last_user_message",
    "error_json",
    "html_page",
    "json_reply",
    "openai_server",
    "rate_limited",
    "server_error",
]


def json_reply(value: Any, **options: Any) -> TextReply:
    """Return a TextReply whose text is ``value`` encoded as JSON."""
    return TextReply(json.dumps(value), **options)


def error_json(status: int, message: str, headers: Mapping[str, str] | None = None) -> RawReply:
    """Return an OpenAI-style error reply: ``{"error": {"message": ...}}``."""
    body = json.dumps({"error": {"message": message, "type": "fake_error", "code": status}})
    return RawReply(status, body, headers=dict(headers or {}))


def rate_limited(retry_after: str | None = "0.05", status: int = 429) -> RawReply:
    """Return an HTTP 429 reply, with a Retry-After header unless ``retry_after`` is None."""
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return error_json(status, "Rate limit reached, slow down", headers)


def server_error(status: int = 500, retry_after: str | None = None) -> RawReply:
    """Return an HTTP 5xx reply, with a Retry-After header when ``retry_after`` is given."""
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return error_json(status, "The server had an error while processing your request", headers)


def html_page(status: int = 200) -> RawReply:
    """Return an HTML page, as a web server or login portal would send at a wrong URL."""
    body = "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body><h1>Hi</h1></body></html>"
    return RawReply(status, body, content_type="text/html; charset=utf-8")


class FakeOpenAIServer(FakeLlmServer):
    """The running server: its URL (``http://127.0.0.1:PORT/v1``), the requests it received, its script of replies."""

    chat_path = "/v1/chat/completions"

    def __init__(self, *, api_key: str | None, models: Sequence[str]) -> None:
        super().__init__(api_key=api_key, models=models, base_path="/v1")

    def _routes(self) -> list[BaseRoute]:
        return [
            Route(self.chat_path, self._chat, methods=["POST"]),
            Route("/v1/models", self._list_models, methods=["GET"]),
        ]

    def _unauthorized(self, recorded: RecordedRequest) -> Response | None:
        if self._api_key is None:
            return None
        received = recorded.headers.get("authorization", "")
        if received == f"Bearer {self._api_key}":
            return None
        # Real servers echo (part of) the key they got; this echoes all of it, to test redaction.
        message = f"Incorrect API key provided: {received.removeprefix('Bearer ')}"
        return JSONResponse({"error": {"message": message, "code": "invalid_api_key"}}, status_code=401)

    async def _list_models(self, request: Request) -> Response:
        _recorded, denied = await self._accept(request)
        if denied is not None:
            return denied
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self._models]
        return JSONResponse({"object": "list", "data": data})

    # --- reply bodies ----------------------------------------------------------------------

    def _usage(self, reply: TextReply, payload: Mapping[str, Any]) -> dict[str, int]:
        messages = payload.get("messages", [])
        texts = [str(m.get("content", "")) for m in messages if isinstance(m, dict)]
        prompt, completion = self._word_usage(reply, texts)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _reply_body(self, reply: TextReply, payload: Mapping[str, Any]) -> dict[str, Any]:
        content = reply.text if reply.text or not reply.tool_calls else None
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
                for i, (name, arguments) in enumerate(reply.tool_calls)
            ]
        body: dict[str, Any] = {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or payload.get("model", ""),
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
        }
        if reply.send_usage:
            body["usage"] = self._usage(reply, payload)
        return body

    def _chunk(
        self, reply: TextReply, payload: Mapping[str, Any], stream_id: int, choices: list[dict[str, Any]], **extra: Any
    ) -> str:
        data = {
            "id": f"chatcmpl-{stream_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": reply.model or payload.get("model", ""),
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(data)}\n\n"

    def _delta(
        self,
        reply: TextReply,
        payload: Mapping[str, Any],
        stream_id: int,
        content: dict[str, Any],
        finish: str | None = None,
    ) -> str:
        return self._chunk(reply, payload, stream_id, [{"index": 0, "delta": content, "finish_reason": finish}])

    def _stream_opening(self, reply: TextReply, payload: Mapping[str, Any], stream_id: int) -> list[str]:
        opening = [self._delta(reply, payload, stream_id, {"role": "assistant", "content": ""})]
        opening += [self._delta(reply, payload, stream_id, piece) for piece in _tool_call_deltas(reply.tool_calls)]
        return opening

    def _stream_piece(self, reply: TextReply, payload: Mapping[str, Any], stream_id: int, piece: str) -> str:
        return self._delta(reply, payload, stream_id, {"content": piece})

    def _stream_closing(self, reply: TextReply, payload: Mapping[str, Any], stream_id: int) -> list[str]:
        closing = [self._delta(reply, payload, stream_id, {}, reply.finish_reason)]
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        if include_usage and reply.send_usage:
            closing.append(self._chunk(reply, payload, stream_id, [], usage=self._usage(reply, payload)))
        closing.append("data: [DONE]\n\n")
        return closing


def _tool_call_deltas(tool_calls: Sequence[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    for index, (name, arguments) in enumerate(tool_calls):
        function = {"name": name, "arguments": ""}
        yield {"tool_calls": [{"index": index, "id": f"call_{index}", "type": "function", "function": function}]}
        middle = len(arguments) // 2
        for fragment in (arguments[:middle], arguments[middle:]):
            yield {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}


@contextlib.contextmanager
def openai_server(
    *, api_key: str | None = None, models: Sequence[str] = ("fake-model",), default: BehaviourSource | None = None
) -> Iterator[FakeOpenAIServer]:
    """Start a fake OpenAI-compatible server on 127.0.0.1 and stop it on exit.

    ``api_key`` makes every request without ``Authorization: Bearer <api_key>`` get HTTP 401.
    """
    server = FakeOpenAIServer(api_key=api_key, models=models)
    if default is not None:
        server.set_default(default)
    server.start()
    try:
        yield server
    finally:
        server.close()
