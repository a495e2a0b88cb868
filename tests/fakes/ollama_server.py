"""Loopback HTTP server speaking Ollama's native chat API, with replies scripted per test.

It shares the machinery of ``tests.fakes.llm_server_base`` (uvicorn on 127.0.0.1 at a free port in a
background thread, the script of behaviours, request recording, hang and disconnect tracking), so the
behaviour classes of ``tests.fakes.openai_server`` work here too.

Usage::

    with ollama_server(models=("llama3.2:latest",)) as server:
        server.script(TextReply("Hello there", chunk_delay_s=0.01))
        endpoint = LlmEndpoint("ollama", server.base_url)
        ...
        assert server.chat_requests[-1].json["format"] == schema

Routes: ``POST /api/chat`` (newline-delimited JSON objects when the body's ``stream`` is not false, as
Ollama streams by default), ``GET /api/tags`` (or ``server.tags_reply`` when set), and a JSON 404 for any
other path. Ollama has no
authentication of its own; ``api_key`` makes the server act like an authenticating proxy in front of it
and reply 401 to requests without ``Authorization: Bearer <api_key>``.

Behaviours: ``TextReply`` (``finish_reason`` becomes ``done_reason``; ``send_usage=False`` leaves out
``prompt_eval_count`` and ``eval_count``), ``json_reply``, ``RawReply`` and its helpers (``model_not_found``
here), ``RawStream`` (raw lines sent as ``application/x-ndjson``), ``Hang``, and ``StreamError`` (some
text, then an ``{"error": ...}`` line). A ``TextReply``'s ``tool_calls`` are sent whole in the message's
``tool_calls``, with the arguments as objects, as Ollama does.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from tests.fakes.llm_server_base import BehaviourSource, FakeLlmServer, RawReply, RecordedRequest, TextReply


@dataclass(frozen=True)
class StreamError:
    """A streamed reply that sends ``text_before`` and then an ``{"error": message}`` line."""

    text_before: str = "Partial "
    message: str = "model runner has unexpectedly stopped"


def model_not_found(model: str = "missing-model") -> RawReply:
    """Return Ollama's HTTP 404 reply for a model that is not pulled."""
    return RawReply(404, json.dumps({"error": f'model "{model}" not found, try pulling it first'}))


class FakeOllamaServer(FakeLlmServer):
    """The running server: its root URL, the requests it received, and its script of replies."""

    chat_path = "/api/chat"

    stream_media_type = "application/x-ndjson"

    def __init__(self, *, api_key: str | None, models: Sequence[str]) -> None:
        super().__init__(api_key=api_key, models=models)
        # When set, GET /api/tags returns this reply instead of the model list.
        self.tags_reply: RawReply | None = None

    def _routes(self) -> list[BaseRoute]:
        return [
            Route(self.chat_path, self._chat, methods=["POST"]),
            Route("/api/tags", self._tags, methods=["GET"]),
        ]

    def _unauthorized(self, recorded: RecordedRequest) -> Response | None:
        if self._api_key is None:
            return None
        received = recorded.headers.get("authorization", "")
        if received == f"Bearer {self._api_key}":
            return None
        # An authenticating proxy that echoes the key it got, to test redaction.
        message = f"Incorrect API key provided: {received.removeprefix('Bearer ')}"
        return JSONResponse({"error": {"message": message, "code": "invalid_api_key"}}, status_code=401)

    async def _tags(self, request: Request) -> Response:
        _recorded, denied = await self._accept(request)
        if denied is not None:
            return denied
        if self.tags_reply is not None:
            return self.tags_reply.response()
        models = [
            {"name": m, "model": m, "modified_at": "2026-01-01T00:00:00Z", "size": 1, "digest": "0" * 64}
            for m in self._models
        ]
        return JSONResponse({"models": models})

    def _wants_stream(self, payload: Mapping[str, Any]) -> bool:
        # Ollama streams unless the request sets "stream": false.
        return bool(payload.get("stream", True))

    def _other_behaviour(self, behaviour: Any, payload: Mapping[str, Any]) -> Response:
        if isinstance(behaviour, StreamError):
            return StreamingResponse(self._error_stream(behaviour, payload), media_type=self.stream_media_type)
        return super()._other_behaviour(behaviour, payload)

    # --- reply bodies ----------------------------------------------------------------------

    def _chunk(self, reply: TextReply, payload: Mapping[str, Any], content: str) -> dict[str, Any]:
        return {
            "model": reply.model or payload.get("model", ""),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "message": {"role": "assistant", "content": content},
            "done": False,
        }

    def _final(self, reply: TextReply, payload: Mapping[str, Any], content: str) -> dict[str, Any]:
        final = self._chunk(reply, payload, content)
        final.update(done=True, done_reason=reply.finish_reason, total_duration=1000, eval_duration=500)
        if reply.send_usage:
            messages = payload.get("messages", [])
            texts = [str(m.get("content", "")) for m in messages if isinstance(m, dict)]
            prompt, completion = self._word_usage(reply, texts)
            final.update(prompt_eval_count=prompt, eval_count=completion)
        return final

    def _tool_calls_chunk(self, reply: TextReply, payload: Mapping[str, Any]) -> dict[str, Any]:
        chunk = self._chunk(reply, payload, "")
        chunk["message"]["tool_calls"] = [
            {"function": {"name": name, "arguments": json.loads(arguments)}} for name, arguments in reply.tool_calls
        ]
        return chunk

    def _reply_body(self, reply: TextReply, payload: Mapping[str, Any]) -> dict[str, Any]:
        final = self._final(reply, payload, reply.text)
        if reply.tool_calls:
            final["message"]["tool_calls"] = self._tool_calls_chunk(reply, payload)["message"]["tool_calls"]
        return final

    def _stream_opening(self, reply: TextReply, payload: Mapping[str, Any], stream_id: int) -> list[str]:
        if not reply.tool_calls:
            return []
        return [json.dumps(self._tool_calls_chunk(reply, payload)) + "\n"]

    def _stream_piece(self, reply: TextReply, payload: Mapping[str, Any], stream_id: int, piece: str) -> str:
        return json.dumps(self._chunk(reply, payload, piece)) + "\n"

    def _stream_closing(self, reply: TextReply, payload: Mapping[str, Any], stream_id: int) -> list[str]:
        return [json.dumps(self._final(reply, payload, "")) + "\n"]

    async def _error_stream(self, behaviour: StreamError, payload: Mapping[str, Any]) -> AsyncIterator[str]:
        yield json.dumps(self._chunk(TextReply(""), payload, behaviour.text_before)) + "\n"
        yield json.dumps({"error": behaviour.message}) + "\n"


@contextmanager
def ollama_server(
    *, api_key: str | None = None, models: Sequence[str] = ("fake-model",), default: BehaviourSource | None = None
) -> Iterator[FakeOllamaServer]:
    """Start a fake Ollama server on 127.0.0.1 and stop it on exit."""
    server = FakeOllamaServer(api_key=api_key, models=models)
    if default is not None:
        server.set_default(default)
    server.start()
    try:
        yield server
    finally:
        server.close()
