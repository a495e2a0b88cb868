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
``server.aborted_count`` grows when a client disconnects before a reply was complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# Seconds to wait for the server thread to start or stop.
_THREAD_TIMEOUT_S = 10.0
_WORD_PATTERN = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class TextReply:
    """A successful chat reply with ``text``, streamed in ``chunks`` (default: one chunk per word)."""

    text: str
    chunks: Sequence[str] | None = None
    # Seconds to wait before each content chunk (a slow token stream).
    chunk_delay_s: float = 0.0
    # After this many content chunks, send nothing more and keep the stream open until the client leaves.
    stall_after_chunks: int | None = None
    finish_reason: str = "stop"
    send_usage: bool = True
    # (prompt_tokens, completion_tokens); default: words in the request messages and the chunk count.
    usage: tuple[int, int] | None = None
    # Model name in the reply; default: the requested model.
    model: str | None = None
    # (function name, arguments JSON) pairs, sent as tool-call deltas before the text.
    tool_calls: Sequence[tuple[str, str]] = ()

    def content_chunks(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        return _WORD_PATTERN.findall(self.text)


@dataclass(frozen=True)
class RawReply:
    """A fixed HTTP reply, used for errors and non-API pages."""

    status: int
    body: str = ""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RawStream:
    """A 200 ``text/event-stream`` reply made of ``lines`` exactly as given, each followed by a newline."""

    lines: Sequence[str]


@dataclass(frozen=True)
class Hang:
    """No reply: the request stays open until the client disconnects or the server closes."""


Behaviour = TextReply | RawReply | RawStream | Hang


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it. Header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


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


def echo_last_user_message(request: RecordedRequest) -> Behaviour:
    """Default behaviour: reply ``echo: <last user message>``."""
    messages = request.json.get("messages", [])
    user_texts = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return TextReply(f"echo: {user_texts[-1] if user_texts else ''}")


BehaviourSource = Behaviour | Callable[[RecordedRequest], Behaviour]


class FakeOpenAIServer:
    """The running server: its URL, the requests it received, and its script of replies."""

    def __init__(self, *, api_key: str | None, models: Sequence[str]) -> None:
        self._api_key = api_key
        self._models = list(models)

        self._script: deque[BehaviourSource] = deque()
        self._default: BehaviourSource = echo_last_user_message
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.requests: list[RecordedRequest] = []
        self.aborted = threading.Event()
        self.aborted_count = 0

        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.port: int = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

        self._server = uvicorn.Server(
            uvicorn.Config(
                self._build_app(),
                log_level="warning",
                access_log=False,
                lifespan="on",
                loop="asyncio",
                http="h11",
                timeout_graceful_shutdown=_THREAD_TIMEOUT_S,
            )
        )
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    # --- scripting -------------------------------------------------------------------------

    def script(self, *behaviours: BehaviourSource) -> None:
        """Queue behaviours for the next chat requests, one each, in order."""
        with self._lock:
            self._script.extend(behaviours)

    def set_default(self, behaviour: BehaviourSource) -> None:
        """Set the behaviour used once the script is empty (a fixed one, or a function of the request)."""
        with self._lock:
            self._default = behaviour

    def require_api_key(self, api_key: str | None) -> None:
        """Reply 401 to requests without ``Authorization: Bearer <api_key>``; None accepts any request."""
        self._api_key = api_key

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def pending_script(self) -> int:
        with self._lock:
            return len(self._script)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(_THREAD_TIMEOUT_S):
            raise RuntimeError(f"fake OpenAI server on port {self.port} did not start within {_THREAD_TIMEOUT_S} s")

    def close(self) -> None:
        """Release hanging requests, stop the server and wait for its thread."""
        if self._loop is not None and self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)
        self._server.should_exit = True
        self._thread.join(_THREAD_TIMEOUT_S)
        self._socket.close()

    # --- app -------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            self._loop = asyncio.get_running_loop()
            self._closing = asyncio.Event()
            self._started.set()
            yield

        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
                Route("/{path:path}", self._not_found, methods=methods),
            ],
            lifespan=lifespan,
        )

    async def _record(self, request: Request) -> RecordedRequest:
        body = await request.body()
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        self.requests.append(recorded)
        return recorded

    def _unauthorized(self, recorded: RecordedRequest) -> Response | None:
        if self._api_key is None:
            return None
        received = recorded.headers.get("authorization", "")
        if received == f"Bearer {self._api_key}":
            return None
        # Real servers echo (part of) the key they got; this echoes all of it, to test redaction.
        message = f"Incorrect API key provided: {received.removeprefix('Bearer ')}"
        return JSONResponse({"error": {"message": message, "code": "invalid_api_key"}}, status_code=401)

    async def _not_found(self, request: Request) -> Response:
        recorded = await self._record(request)
        message = f"Unknown request URL: {recorded.method} {recorded.path}"
        return JSONResponse({"error": {"message": message}}, status_code=404)

    async def _list_models(self, request: Request) -> Response:
        recorded = await self._record(request)
        denied = self._unauthorized(recorded)
        if denied is not None:
            return denied
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self._models]
        return JSONResponse({"object": "list", "data": data})

    async def _chat(self, request: Request) -> Response:
        recorded = await self._record(request)
        denied = self._unauthorized(recorded)
        if denied is not None:
            return denied
        try:
            payload = recorded.json
        except ValueError:
            return JSONResponse({"error": {"message": "request body is not JSON"}}, status_code=400)
        behaviour = self._next_behaviour(recorded)
        if isinstance(behaviour, Hang):
            return await self._hang(request)
        if isinstance(behaviour, RawReply):
            return Response(
                behaviour.body, behaviour.status, headers=dict(behaviour.headers), media_type=behaviour.content_type
            )
        if isinstance(behaviour, RawStream):
            text = "".join(line + "\n" for line in behaviour.lines)
            return Response(text, 200, media_type="text/event-stream")
        if payload.get("stream"):
            return StreamingResponse(self._stream(behaviour, payload), media_type="text/event-stream")
        return JSONResponse(self._completion(behaviour, payload))

    def _next_behaviour(self, recorded: RecordedRequest) -> Behaviour:
        with self._lock:
            source = self._script.popleft() if self._script else self._default
        return source(recorded) if callable(source) else source

    async def _hang(self, request: Request) -> Response:
        assert self._closing is not None
        disconnected = asyncio.ensure_future(_wait_for_disconnect(request))
        closing = asyncio.ensure_future(self._closing.wait())
        done, pending = await asyncio.wait({disconnected, closing}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if disconnected in done:
            self._note_aborted()
        return Response(status_code=503)

    def _note_aborted(self) -> None:
        with self._lock:
            self.aborted_count += 1
        self.aborted.set()

    # --- reply bodies ----------------------------------------------------------------------

    def _usage(self, reply: TextReply, payload: Mapping[str, Any]) -> dict[str, int]:
        if reply.usage is not None:
            prompt, completion = reply.usage
        else:
            messages = payload.get("messages", [])
            prompt = sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))
            completion = len(reply.content_chunks())
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _completion(self, reply: TextReply, payload: Mapping[str, Any]) -> dict[str, Any]:
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

    async def _stream(self, reply: TextReply, payload: Mapping[str, Any]) -> AsyncIterator[str]:
        assert self._closing is not None
        completion_id = f"chatcmpl-{next(self._ids)}"
        model = reply.model or payload.get("model", "")

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
            data = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(data)}\n\n"

        def delta(content: dict[str, Any], finish_reason: str | None = None) -> str:
            return chunk([{"index": 0, "delta": content, "finish_reason": finish_reason}])

        completed = False
        try:
            yield delta({"role": "assistant", "content": ""})
            for piece in _tool_call_deltas(reply.tool_calls):
                yield delta(piece)
            for index, piece in enumerate(reply.content_chunks()):
                if reply.stall_after_chunks is not None and index >= reply.stall_after_chunks:
                    await self._closing.wait()
                    return
                if reply.chunk_delay_s:
                    await asyncio.sleep(reply.chunk_delay_s)
                yield delta({"content": piece})
            yield delta({}, reply.finish_reason)
            include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            if include_usage and reply.send_usage:
                yield chunk([], usage=self._usage(reply, payload))
            yield "data: [DONE]\n\n"
            completed = True
        finally:
            if not completed and not self._closing.is_set():
                self._note_aborted()


def _tool_call_deltas(tool_calls: Sequence[tuple[str, str]]) -> Iterator[dict[str, Any]]:
    for index, (name, arguments) in enumerate(tool_calls):
        function = {"name": name, "arguments": ""}
        yield {"tool_calls": [{"index": index, "id": f"call_{index}", "type": "function", "function": function}]}
        middle = len(arguments) // 2
        for fragment in (arguments[:middle], arguments[middle:]):
            yield {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}


async def _wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


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
