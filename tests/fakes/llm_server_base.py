"""Shared machinery of the fake LLM servers: uvicorn on loopback, scripted behaviours, recording, streaming.

A provider fake subclasses ``FakeLlmServer`` and supplies its routes, its authentication check, and how a
``TextReply`` looks on the wire: ``_reply_body`` (one JSON object) and, for streaming, ``_stream_opening``,
``_stream_piece`` and ``_stream_closing``. The base handles the rest the same way for every provider:
the script of behaviours, ``Hang``, ``RawReply``, ``RawStream``, chunk delays, stalls, and counting the
clients that disconnect before a reply is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

# Seconds to wait for the server thread to start or stop.
THREAD_TIMEOUT_S = 10.0
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
    # (function name, arguments JSON) pairs: tool calls the model makes, sent before the text.
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

    def response(self) -> Response:
        return Response(self.body, self.status, headers=dict(self.headers), media_type=self.content_type)


@dataclass(frozen=True)
class RawStream:
    """A 200 streaming reply made of ``lines`` exactly as given, each followed by a newline."""

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


def echo_last_user_message(request: RecordedRequest) -> Behaviour:
    """Default behaviour: reply ``echo: <last user message>``."""
    messages = request.json.get("messages", [])
    user_texts = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return TextReply(f"echo: {user_texts[-1] if user_texts else ''}")


BehaviourSource = Behaviour | Callable[[RecordedRequest], Behaviour]


class FakeLlmServer:
    """The running server: its URL, the requests it received, and its script of replies."""

    # Content type of streamed replies and of RawStream replies.
    stream_media_type = "text/event-stream"
    # Path of the provider's chat resource.
    chat_path = ""

    def __init__(self, *, api_key: str | None, models: Sequence[str], base_path: str = "") -> None:
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
        self.base_url = f"http://127.0.0.1:{self.port}{base_path}"

        self._server = uvicorn.Server(
            uvicorn.Config(
                self._build_app(),
                log_level="warning",
                access_log=False,
                lifespan="on",
                loop="asyncio",
                http="h11",
                timeout_graceful_shutdown=int(THREAD_TIMEOUT_S),
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
        """Reject requests without ``api_key`` (HTTP 401); None accepts any request."""
        self._api_key = api_key

    def set_models(self, models: Sequence[str]) -> None:
        """Replace the model list the server returns."""
        self._models = list(models)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The chat requests received so far, in order."""
        return [r for r in self.requests if r.path == self.chat_path]

    @property
    def pending_script(self) -> int:
        with self._lock:
            return len(self._script)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(THREAD_TIMEOUT_S):
            raise RuntimeError(f"fake LLM server on port {self.port} did not start within {THREAD_TIMEOUT_S} s")

    def close(self) -> None:
        """Release hanging requests, stop the server and wait for its thread."""
        if self._loop is not None and self._closing is not None:
            self._loop.call_soon_threadsafe(self._closing.set)
        self._server.should_exit = True
        self._thread.join(THREAD_TIMEOUT_S)
        self._socket.close()

    # --- app -------------------------------------------------------------------------------

    def _routes(self) -> list[BaseRoute]:
        """Return the provider's routes; a JSON 404 for any other path is added after them."""
        raise NotImplementedError

    def _build_app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            self._loop = asyncio.get_running_loop()
            self._closing = asyncio.Event()
            self._started.set()
            yield

        methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        routes = [*self._routes(), Route("/{path:path}", self._not_found, methods=methods)]
        return Starlette(routes=routes, lifespan=lifespan)

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
        """Return the rejection of a request that fails authentication, or None to accept it."""
        raise NotImplementedError

    async def _accept(self, request: Request) -> tuple[RecordedRequest, Response | None]:
        """Record a request and check its authentication; the response is the rejection, if any."""
        recorded = await self._record(request)
        return recorded, self._unauthorized(recorded)

    async def _not_found(self, request: Request) -> Response:
        recorded = await self._record(request)
        message = f"Unknown request URL: {recorded.method} {recorded.path}"
        return JSONResponse({"error": {"message": message}}, status_code=404)

    async def _chat(self, request: Request) -> Response:
        """Serve a chat request with the next scripted behaviour."""
        recorded, denied = await self._accept(request)
        if denied is not None:
            return denied
        try:
            payload = recorded.json
        except ValueError:
            return JSONResponse({"error": {"message": "request body is not JSON"}}, status_code=400)
        behaviour: Any = self._next_behaviour(recorded)
        if isinstance(behaviour, Hang):
            return await self._hang(request)
        if isinstance(behaviour, RawReply):
            return behaviour.response()
        if isinstance(behaviour, RawStream):
            return Response("".join(line + "\n" for line in behaviour.lines), 200, media_type=self.stream_media_type)
        if not isinstance(behaviour, TextReply):
            return self._other_behaviour(behaviour, payload)
        if self._wants_stream(payload):
            return StreamingResponse(self._stream(behaviour, payload), media_type=self.stream_media_type)
        return JSONResponse(self._reply_body(behaviour, payload))

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

    def _wants_stream(self, payload: Mapping[str, Any]) -> bool:
        return bool(payload.get("stream"))

    def _other_behaviour(self, behaviour: Any, payload: Mapping[str, Any]) -> Response:
        """Serve a provider-specific behaviour class (such as a stream that ends in an error)."""
        raise TypeError(f"unknown fake behaviour {behaviour!r}")

    def _reply_body(self, reply: TextReply, payload: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _stream_opening(self, reply: TextReply, payload: Mapping[str, Any], stream_id: int) -> list[str]:
        """Return what the stream sends before the first content chunk; ``stream_id`` is unique per stream."""
        raise NotImplementedError

    def _stream_piece(self, reply: TextReply, payload: Mapping[str, Any], stream_id: int, piece: str) -> str:
        raise NotImplementedError

    def _stream_closing(self, reply: TextReply, payload: Mapping[str, Any], stream_id: int) -> list[str]:
        """Return what the stream sends after the last content chunk."""
        raise NotImplementedError

    async def _stream(self, reply: TextReply, payload: Mapping[str, Any]) -> AsyncIterator[str]:
        assert self._closing is not None
        stream_id = next(self._ids)
        completed = False
        try:
            for opening in self._stream_opening(reply, payload, stream_id):
                yield opening
            for index, piece in enumerate(reply.content_chunks()):
                if reply.stall_after_chunks is not None and index >= reply.stall_after_chunks:
                    await self._closing.wait()
                    return
                if reply.chunk_delay_s:
                    await asyncio.sleep(reply.chunk_delay_s)
                yield self._stream_piece(reply, payload, stream_id, piece)
            for closing in self._stream_closing(reply, payload, stream_id):
                yield closing
            completed = True
        finally:
            if not completed and not self._closing.is_set():
                self._note_aborted()

    def _word_usage(self, reply: TextReply, prompt_texts: Sequence[str]) -> tuple[int, int]:
        """Return the scripted usage, or the words of the prompt texts and the reply's chunk count."""
        if reply.usage is not None:
            return reply.usage
        return sum(len(text.split()) for text in prompt_texts), len(reply.content_chunks())


async def _wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
