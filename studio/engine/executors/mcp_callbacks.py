"""Requests an MCP server sends to the client during a tool call: sampling, elicitation and roots.

A tool call carries a `CallScope` that decides how its server requests are served. The session's
callbacks find the scope of the call a request belongs to (see `ScopeRegistry`) and hand the
request to the scope's sampler or elicitor. `CallDeadline` is the time limit of one call, which
progress notifications may restart and which stops while a person or an LLM serves a request.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import mcp_types
from mcp.client.session import ClientRequestContext
from pydantic import JsonValue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingMessage:
    """One message of a sampling request; only text content is supported."""

    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class SamplingRequest:
    """A server's `sampling/createMessage` request in plain data."""

    server: str
    messages: tuple[SamplingMessage, ...]
    system_prompt: str | None
    max_tokens: int
    temperature: float | None = None
    stop_sequences: tuple[str, ...] = ()
    model_hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class SamplingResponse:
    """The LLM's reply to a sampling request, with token counts for metering."""

    text: str
    model: str
    stop_reason: str | None = "endTurn"
    prompt_tokens: int = 0
    completion_tokens: int = 0


Sampler = Callable[[SamplingRequest], Awaitable[SamplingResponse]]
"""Serves a sampling request with an LLM; raises an exception whose message names the failure."""


@dataclass(frozen=True)
class ElicitationRequest:
    """A server's form-mode `elicitation/create` request: a message and a flat JSON Schema of fields."""

    server: str
    tool: str
    message: str
    requested_schema: dict[str, JsonValue]


@dataclass(frozen=True)
class ElicitationAnswer:
    """A person's answer: accept with `content`, decline, or cancel."""

    action: Literal["accept", "decline", "cancel"]
    content: dict[str, JsonValue] | None = None


Elicitor = Callable[[ElicitationRequest], Awaitable[ElicitationAnswer]]
"""Asks a person to answer an elicitation request and waits for the answer."""


class CallDeadline:
    """The time limit of one tool call.

    Without `reset_on_progress` the call ends `timeout_s` after it started. With it, each
    progress notification restarts the limit, up to `max_s` after the start. Time spent in
    `suspended()` (a person answering an elicitation, an LLM serving a sampling request) counts
    toward neither limit.
    """

    def __init__(self, timeout_s: float | None, *, reset_on_progress: bool = False, max_s: float | None = None) -> None:
        self.timeout_s = timeout_s
        self.reset_on_progress = reset_on_progress and timeout_s is not None
        self.max_s = max_s
        self.progress_seen = False
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self._due: float | None = None if timeout_s is None else now + timeout_s
        self._cap: float | None = None if max_s is None else now + max_s
        self._timeout: asyncio.Timeout | None = None
        self._suspended = 0
        self._suspended_at = 0.0

    def when(self) -> float | None:
        """The loop time at which the call is cancelled, or None for no limit."""
        if self._suspended:
            return None
        if self._due is None:
            return self._cap
        if self._cap is None:
            return self._due
        return min(self._due, self._cap)

    def attach(self, timeout: asyncio.Timeout) -> None:
        """Drive `timeout` (the caller's asyncio.timeout context) from this deadline."""
        self._timeout = timeout
        timeout.reschedule(self.when())

    def on_progress(self) -> None:
        self.progress_seen = True
        if self.reset_on_progress and self.timeout_s is not None and not self._suspended:
            self._due = self._loop.time() + self.timeout_s
            self._apply()

    def expired_by_cap(self) -> bool:
        """Whether the hard limit, rather than the plain time limit, ended the call."""
        if self._cap is None:
            return False
        return self._due is None or self._cap <= self._due

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Stop the clock for the duration of the block; nested blocks are counted."""
        if self._suspended == 0:
            self._suspended_at = self._loop.time()
        self._suspended += 1
        self._apply()
        try:
            yield
        finally:
            self._suspended -= 1
            if self._suspended == 0:
                paused = self._loop.time() - self._suspended_at
                if self._due is not None:
                    self._due += paused
                if self._cap is not None:
                    self._cap += paused
            self._apply()

    def _apply(self) -> None:
        if self._timeout is not None and not self._timeout.expired():
            self._timeout.reschedule(self.when())


@dataclass
class CallScope:
    """Rules for serving the server requests of one tool call, and the label for reporting them.

    `label` names the run and step in logs. A scope without a sampler rejects sampling, and one
    without an elicitor rejects elicitation, each with a message naming what to change.
    """

    label: str
    tool: str = ""
    allow_sampling: bool = False
    sampler: Sampler | None = None
    elicitor: Elicitor | None = None
    deadline: CallDeadline | None = None
    pending: set[asyncio.Task[Any]] = field(default_factory=set)
    """Tasks serving this call's requests on the session's reader side; cancelled when the call ends."""


_current_scope: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar("mcp_call_scope", default=None)


class ScopeRegistry:
    """The scopes of the calls in flight on one session.

    On the 2026-07-28 protocol the SDK serves a call's server requests in the caller's task,
    where the context variable set by `enter` names the scope. On the older protocol they arrive
    on the session's reader task, which carries no caller context, and nothing on the wire links
    a request to a call. Then the request goes to the only call in flight, or to the oldest one.
    """

    def __init__(self) -> None:
        self._scopes: dict[int, CallScope] = {}
        self._ids = itertools.count()

    @contextmanager
    def enter(self, scope: CallScope) -> Iterator[None]:
        number = next(self._ids)
        self._scopes[number] = scope
        token = _current_scope.set(scope)
        try:
            yield
        finally:
            _current_scope.reset(token)
            del self._scopes[number]
            for pending in list(scope.pending):
                # A server that gives up on its request does not always say so, so the person's
                # pending task must not outlive the call.
                pending.cancel()

    def current(self) -> CallScope | None:
        scope = _current_scope.get()
        if scope is not None:
            return scope
        if len(self._scopes) > 1:
            # NOTE: with several calls in flight on an older-protocol session, a server request
            # cannot be matched to its call. It is served in the scope of the oldest call.
            logger.warning("%d MCP calls share one session; serving a server request for the oldest", len(self._scopes))
        return next(iter(self._scopes.values()), None)


class ServerRequestHandlers:
    """The sampling, elicitation and roots callbacks of one session."""

    def __init__(self, server: str, registry: ScopeRegistry, roots: Sequence[Path]) -> None:
        self.server = server
        self.registry = registry
        self.roots = tuple(roots)

    async def sampling(
        self, context: ClientRequestContext, params: mcp_types.CreateMessageRequestParams
    ) -> mcp_types.CreateMessageResult | mcp_types.ErrorData:
        scope = self.registry.current()
        if scope is None:
            return _error(f"MCP server '{self.server}' sent a sampling request while no tool call was running")
        if not scope.allow_sampling or scope.sampler is None:
            logger.info("Rejected a sampling request from MCP server %s during %s", self.server, scope.label)
            return _error(
                f"sampling is not allowed for MCP server '{self.server}'; "
                "turn on allow_sampling in the MCP instance to let it use the default LLM connection"
            )
        try:
            request = sampling_request(self.server, params)
        except ValueError as error:
            return _error(str(error), code=mcp_types.INVALID_PARAMS)
        started = time.monotonic()
        try:
            with _suspended(scope.deadline):
                response = await scope.sampler(request)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.warning("Sampling for MCP server %s during %s failed: %s", self.server, scope.label, error)
            return _error(f"the client's LLM call for sampling failed: {error}")
        logger.info(
            "Served a sampling request from MCP server %s during %s in %.2f s with model %s",
            self.server,
            scope.label,
            time.monotonic() - started,
            response.model,
        )
        return mcp_types.CreateMessageResult(
            role="assistant",
            content=mcp_types.TextContent(type="text", text=response.text),
            model=response.model,
            stop_reason=response.stop_reason,
        )

    async def elicitation(
        self, context: ClientRequestContext, params: mcp_types.ElicitRequestParams
    ) -> mcp_types.ElicitResult | mcp_types.ErrorData:
        scope = self.registry.current()
        if scope is None:
            return _error(f"MCP server '{self.server}' sent an elicitation request while no tool call was running")
        if isinstance(params, mcp_types.ElicitRequestURLParams):
            logger.info("Declined a URL elicitation from MCP server %s during %s", self.server, scope.label)
            return _error("URL-mode elicitation is not supported by this client; use a form-mode request")
        if scope.elicitor is None:
            return _error(
                f"MCP server '{self.server}' asked for user input, but this call cannot ask a person; "
                "run the tool from a workflow step"
            )
        schema = _json_object(params.requested_schema)
        request = ElicitationRequest(
            server=self.server, tool=scope.tool, message=params.message, requested_schema=schema
        )
        current = asyncio.current_task()
        if current is not None:
            scope.pending.add(current)
        try:
            with _suspended(scope.deadline):
                answer = await scope.elicitor(request)
        finally:
            if current is not None:
                scope.pending.discard(current)
        content: Any = answer.content if answer.action == "accept" else None
        return mcp_types.ElicitResult(action=answer.action, content=content)

    async def list_roots(self, context: ClientRequestContext) -> mcp_types.ListRootsResult | mcp_types.ErrorData:
        roots = [mcp_types.Root(uri=path.resolve().as_uri(), name=path.name or str(path)) for path in self.roots]
        return mcp_types.ListRootsResult(roots=roots)


def sampling_request(server: str, params: mcp_types.CreateMessageRequestParams) -> SamplingRequest:
    """Convert the SDK's sampling parameters; raise ValueError for content other than text."""
    messages: list[SamplingMessage] = []
    for message in params.messages:
        blocks = message.content if isinstance(message.content, list) else [message.content]
        texts: list[str] = []
        for block in blocks:
            if not isinstance(block, mcp_types.TextContent):
                raise ValueError(f"sampling supports text messages only, got a '{block.type}' block")
            texts.append(block.text)
        messages.append(SamplingMessage(role=message.role, text="\n".join(texts)))
    hints: list[str] = []
    if params.model_preferences is not None and params.model_preferences.hints:
        hints = [hint.name for hint in params.model_preferences.hints if hint.name]
    return SamplingRequest(
        server=server,
        messages=tuple(messages),
        system_prompt=params.system_prompt,
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        stop_sequences=tuple(params.stop_sequences or ()),
        model_hints=tuple(hints),
    )


@contextmanager
def _suspended(deadline: CallDeadline | None) -> Iterator[None]:
    if deadline is None:
        yield
        return
    with deadline.suspended():
        yield


def _error(message: str, *, code: int = mcp_types.INVALID_REQUEST) -> mcp_types.ErrorData:
    return mcp_types.ErrorData(code=code, message=message)


def _json_object(value: dict[str, Any]) -> dict[str, JsonValue]:
    return {str(key): item for key, item in value.items()}
