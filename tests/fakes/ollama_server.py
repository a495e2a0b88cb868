"""Loopback HTTP server speaking Ollama's native chat API, with replies scripted per test.

It reuses the OpenAI fake's machinery (uvicorn on 127.0.0.1 at a free port in a background thread, the
script of behaviours, request recording, hang and disconnect tracking) and replaces its routes, so the
behaviour classes of ``tests.fakes.openai_server`` work here too.

Usage::

    with ollama_server(models=("llama3.2:latest",)) as server:
        server.script(TextReply("Hello there", chunk_delay_s=0.01))
        endpoint = LlmEndpoint("ollama", server.base_url)
        ...
        assert server.chat_requests[-1].json["format"] == schema

Routes: ``POST /api/chat`` (newline-delimited JSON objects when the body's ``stream`` is not false, as
Ollama streams by default), ``GET /api/tags`` (or ``server.tags_reply`` when set), and a JSON 404 for any other path. Ollama has no
authentication of its own; ``api_key`` makes the server act like an authenticating proxy in front of it
and reply 401 to requests without ``Authorization: Bearer <api_key>``.

Behaviours: ``TextReply`` (``finish_reason`` becomes ``done_reason``; ``send_usage=False`` leaves out
``prompt_eval_count`` and ``eval_count``), ``json_reply``, ``RawReply`` and its helpers (``model_not_found``
here), ``RawStream`` (raw lines sent as ``application/x-ndjson``), ``Hang``, and ``StreamError`` (some
text, then an ``{"error": ...}`` line).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.openai_server import (
    BehaviourSource,
    FakeOpenAIServer,
    Hang,
    RawReply,
    RawStream,
    RecordedRequest,
    TextReply,
)

_NDJSON = "application/x-ndjson"


@dataclass(frozen=True)
class StreamError:
    """A streamed reply that sends ``text_before`` and then an ``{"error": message}`` line."""

    text_before: str = "Partial "
    message: str = "model runner has unexpectedly stopped"


def model_not_found(model: str = "missing-model") -> RawReply:
    """Return Ollama's HTTP 404 reply for a model that is not pulled."""
    return RawReply(404, json.dumps({"error": f'model "{model}" not found, try pulling it first'}))


class FakeOllamaServer(FakeOpenAIServer):
    """The running server: its root URL, the requests it received, and its script of replies."""

    def __init__(self, *, api_key: str | None, models: Sequence[str]) -> None:
        super().__init__(api_key=api_key, models=models)
        self.base_url = f"http://127.0.0.1:{self.port}"
        # When set, GET /api/tags returns this reply instead of the model list.
        self.tags_reply: RawReply | None = None

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/api/chat"]

    def _build_app(self) -> Starlette:
        app = super()._build_app()
        app.router.routes.insert(0, Route("/api/chat", self._chat_native, methods=["POST"]))
        app.router.routes.insert(1, Route("/api/tags", self._tags, methods=["GET"]))
        return app

    async def _tags(self, request: Request) -> Response:
        recorded = await self._record(request)
        denied = self._unauthorized(recorded)
        if denied is not None:
            return denied
        if self.tags_reply is not None:
            reply = self.tags_reply
            return Response(reply.body, reply.status, headers=dict(reply.headers), media_type=reply.content_type)
        models = [
            {"name": m, "model": m, "modified_at": "2026-01-01T00:00:00Z", "size": 1, "digest": "0" * 64}
            for m in self._models
        ]
        return JSONResponse({"models": models})

    async def _chat_native(self, request: Request) -> Response:
        recorded = await self._record(request)
        denied = self._unauthorized(recorded)
        if denied is not None:
            return denied
        payload = recorded.json
        behaviour: Any = self._next_behaviour(recorded)
        if isinstance(behaviour, Hang):
            return await self._hang(request)
        if isinstance(behaviour, RawReply):
            return Response(
                behaviour.body, behaviour.status, headers=dict(behaviour.headers), media_type=behaviour.content_type
            )
        if isinstance(behaviour, RawStream):
            return Response("".join(line + "\n" for line in behaviour.lines), 200, media_type=_NDJSON)
        if isinstance(behaviour, StreamError):
            return StreamingResponse(self._error_stream(behaviour, payload), media_type=_NDJSON)
        if payload.get("stream", True):
            return StreamingResponse(self._stream(behaviour, payload), media_type=_NDJSON)
        return JSONResponse(self._final(behaviour, payload, behaviour.text))

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
            if reply.usage is not None:
                prompt, completion = reply.usage
            else:
                messages = payload.get("messages", [])
                prompt = sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))
                completion = len(reply.content_chunks())
            final.update(prompt_eval_count=prompt, eval_count=completion)
        return final

    async def _stream(self, reply: TextReply, payload: Mapping[str, Any]) -> AsyncIterator[str]:
        assert self._closing is not None
        completed = False
        try:
            for index, piece in enumerate(reply.content_chunks()):
                if reply.stall_after_chunks is not None and index >= reply.stall_after_chunks:
                    await self._closing.wait()
                    return
                if reply.chunk_delay_s:
                    await asyncio.sleep(reply.chunk_delay_s)
                yield json.dumps(self._chunk(reply, payload, piece)) + "\n"
            yield json.dumps(self._final(reply, payload, "")) + "\n"
            completed = True
        finally:
            if not completed and not self._closing.is_set():
                self._note_aborted()

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
