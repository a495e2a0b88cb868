"""One live MCP client session to one server, owned by a dedicated asyncio task."""

from __future__ import annotations

import asyncio
import difflib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from pydantic import JsonValue, ValidationError

from studio.engine.executors.mcp_callbacks import CallDeadline, CallScope, ScopeRegistry, ServerRequestHandlers
from studio.engine.executors.mcp_errors import (
    McpAuthError,
    McpConnectError,
    McpError,
    McpProtocolError,
    McpServerCrashedError,
    McpStdoutError,
    McpTimeoutError,
    McpToolError,
    McpUnknownToolError,
)
from studio.engine.executors.mcp_http_auth import HttpAuthFactory, RecordingAuth
from studio.engine.executors.mcp_model import (
    McpServerSpec,
    PromptArgument,
    PromptInfo,
    ResourceInfo,
    ServerIdentity,
    ToolInfo,
    ToolResult,
    content_to_json,
    error_text,
    redact_url,
    result_value,
)
from studio.engine.executors.mcp_stderr import StderrRing
from studio.secrets.vault import SecretsError

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[float, float | None, str | None], None]
StderrListener = Callable[[str], None]

CLIENT_INFO = mcp_types.Implementation(name="workflow-studio", version="0.1.0")
STDERR_SETTLE_S = 2.0
"""How long to wait for a dead server's stderr to reach end of file before taking its tail."""
CLOSE_TIMEOUT_S = 10.0
"""Bound on a graceful session close; the SDK itself kills a stdio server within about 6 s."""
HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
MAX_LIST_PAGES = 100
DEFAULT_MAX_CALL_S = 3600.0
"""Hard limit on a call whose time limit progress restarts, when the spec sets no max_call_timeout_s."""
CALLER_LIMIT = "the time limit of the call"
"""How a timeout error names a time limit the caller gave, as opposed to an instance's call timeout."""
MCP_CONTENT_TYPES = ("application/json", "text/event-stream")
"""Content types of a streamable HTTP reply that carries MCP messages."""
STDOUT_RULE = (
    "an stdio MCP server must write only JSON-RPC messages to stdout; make it send logs and other output to stderr"
)

_CONNECTION_LOST_ERRORS: tuple[type[BaseException], ...] = (
    httpx2.TransportError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    ConnectionError,
)


class _ReportedBySession(logging.Filter):
    """Keep the SDK's error records about failures a session reports itself out of normal logs.

    The SDK logs a traceback for a stdout line that is not JSON-RPC and an error for a reply that
    is not MCP content or a broken event stream, and the session turns each into an error that
    names what to fix. So these records pass only where the SDK's logger is enabled for DEBUG, as
    debug records without traceback.
    """

    MESSAGES = ("Failed to parse JSONRPC message from server", "Unexpected content type:", "Encountered SSE exception")

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith(self.MESSAGES):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.exc_info, record.exc_text = None, None
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


for _sdk_logger in ("mcp.client.stdio", "mcp.client.streamable_http", "mcp.client.sse"):
    logging.getLogger(_sdk_logger).addFilter(_ReportedBySession())


def instance_limit_name(spec: McpServerSpec) -> str:
    """Return how a timeout error names the call timeout that the spec's MCP instance sets."""
    return f"the call timeout of MCP instance '{spec.display_name}'"


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """Flatten exception groups, which anyio task groups raise, into their leaf exceptions."""
    if isinstance(exc, BaseExceptionGroup):
        leaves: list[BaseException] = []
        for inner in exc.exceptions:
            leaves.extend(leaf_exceptions(inner))
        return leaves
    return [exc]


def _is_connection_closed(exc: BaseException) -> bool:
    return isinstance(exc, MCPError) and exc.code == mcp_types.CONNECTION_CLOSED


class ServerConnection:
    """A session to one MCP server.

    A `Client` must be entered and exited in the same task, so a private owner task keeps it
    open for the connection's whole life. Requests go straight through the session from the
    callers' tasks. The SDK's dispatcher matches responses to requests by id, so concurrent
    calls from different tasks share one session, and cancelling a caller sends
    `notifications/cancelled` for its request.
    """

    def __init__(
        self,
        spec: McpServerSpec,
        *,
        mode: str = "auto",
        roots: Sequence[Path] = (),
        http_auth: HttpAuthFactory | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.display_name
        self._mode = mode
        self._http_auth_factory = http_auth
        self._auth: RecordingAuth | None = None
        self.stderr: StderrRing | None = None
        self._client: Client | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._failure: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = False
        self._tools: dict[str, ToolInfo] | None = None
        self._scopes = ScopeRegistry()
        self._handlers = ServerRequestHandlers(self.name, self._scopes, roots)
        self._stderr_listeners: list[StderrListener] = []
        self._stderr_closed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.http_failure: tuple[int, str] | None = None
        """Status code and content type of the last HTTP reply that was an error or not MCP content."""
        self.stdout_garbage: str | None = None
        """The first stdout line that was not JSON-RPC, once the server wrote one; the session then ends."""

    @property
    def alive(self) -> bool:
        """True while the session is open and the server has not been seen to exit."""
        if self._client is None or self._lost or self._stop.is_set():
            return False
        return not (self.stderr is not None and self.stderr.exited)

    @property
    def protocol_version(self) -> str | None:
        """The negotiated protocol version, or None before the handshake."""
        return self._client.protocol_version if self._client is not None else None

    @property
    def server_info(self) -> ServerIdentity | None:
        """The server's name and version from the handshake; None when it gave none or is not connected."""
        if self._client is None:
            return None
        info = self._client.server_info
        if info is None:
            return None
        return ServerIdentity(name=info.name, version=info.version, title=info.title)

    @property
    def capabilities(self) -> dict[str, JsonValue]:
        """The server's capabilities in their wire form (camelCase keys); empty when not connected."""
        if self._client is None:
            return {}
        dumped: dict[str, JsonValue] = self._client.server_capabilities.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        return dumped

    @property
    def instructions(self) -> str | None:
        """The usage instructions the server sent in the handshake, if any."""
        return self._client.instructions if self._client is not None else None

    def stderr_tail(self, lines: int = 20) -> str:
        return self.stderr.tail(lines) if self.stderr is not None else ""

    def add_stderr_listener(self, listener: StderrListener) -> Callable[[], None]:
        """Call `listener` on the event loop with every stderr line the server writes from now on.

        Lines of servers started again after a crash reach the listener too, as long as this
        connection object is the one in use. Returns a function that removes the listener.
        """
        self._stderr_listeners.append(listener)

        def remove() -> None:
            if listener in self._stderr_listeners:
                self._stderr_listeners.remove(listener)

        return remove

    def stderr_lines(self) -> AsyncIterator[str]:
        """Return an iterator over the stderr lines the server writes from this call on.

        For a stdio server it ends after the last line, once the server has exited. For an HTTP
        server, which has no stderr, it ends when the session closes. The subscription starts
        at once, so iterate the result to the end or close it with ``aclose()``.
        """
        queue: asyncio.Queue[str] = asyncio.Queue()
        remove = self.add_stderr_listener(queue.put_nowait)
        return self._iterate_stderr(queue, remove)

    async def _iterate_stderr(self, queue: asyncio.Queue[str], remove: Callable[[], None]) -> AsyncIterator[str]:
        ended = self._stderr_closed if self.spec.transport == "stdio" else self._stop
        closed = asyncio.create_task(ended.wait())
        try:
            while True:
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
                # The lines were queued before the end of file was signalled, so draining loses none.
                while not queue.empty():
                    yield queue.get_nowait()
                return
        finally:
            remove()
            closed.cancel()

    def _on_stderr_closed(self) -> None:
        """Signal, after the last line, that the server's stderr reached end of file."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stderr_closed.set)

    def _on_stderr_line(self, line: str) -> None:
        """Forward a line from the reader thread to the listeners on the event loop."""
        if self._stderr_listeners and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver_stderr_line, line)

    def _deliver_stderr_line(self, line: str) -> None:
        for listener in list(self._stderr_listeners):
            try:
                listener(line)
            except Exception:
                logger.exception("a stderr listener of MCP server %s failed", self.name)

    async def open(self) -> None:
        """Start the server (stdio) or connect (HTTP) and complete the MCP handshake.

        Raises:
            McpConnectError: The command was not found, the server exited or failed the handshake,
                the handshake took longer than `spec.connect_timeout_s`, or the URL is not an MCP endpoint.
            McpStdoutError: The stdio server wrote a line that is not JSON-RPC to stdout.
        """
        self._check_command()
        started = time.monotonic()
        logger.info("starting MCP session to %s (%s)", self.name, self.spec.transport)
        self._task = asyncio.create_task(self._own(), name=f"mcp-session-{self.name}")
        try:
            async with asyncio.timeout(self.spec.connect_timeout_s):
                await _first_of(self._ready.wait(), self._stop.wait())
        except TimeoutError:
            await self._cancel_owner()
            raise McpConnectError(
                f"MCP server '{self.name}' did not complete the MCP handshake within "
                f"{self.spec.connect_timeout_s} s; check that the command starts an MCP server on stdio "
                "(or the URL is an MCP endpoint), or raise the connect timeout",
                server=self.name,
                stderr_tail=self.stderr_tail(),
            ) from None
        except BaseException:
            await self._cancel_owner()
            raise
        if self.stdout_garbage is not None:
            await self._cancel_owner()
            raise McpStdoutError(
                f"MCP server '{self.name}' wrote {self.stdout_garbage!r} to stdout during the handshake; {STDOUT_RULE}",
                server=self.name,
                stderr_tail=self.stderr_tail(),
            )
        if self._failure is not None:
            raise await self._connect_error(self._failure)
        logger.info(
            "MCP session to %s ready in %.2f s (protocol %s)",
            self.name,
            time.monotonic() - started,
            self.protocol_version,
        )

    async def close(self) -> None:
        """End the session and stop the server process; safe to call more than once."""
        self._stop.set()
        task = self._task
        if task is None or task.done():
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await asyncio.shield(task)
        except TimeoutError:
            logger.warning("MCP session to %s did not close within %s s; cancelling it", self.name, CLOSE_TIMEOUT_S)
            await self._cancel_owner()
        logger.info("MCP session to %s closed", self.name)

    async def list_tools(self, *, refresh: bool = False) -> dict[str, ToolInfo]:
        """Return the server's tools by name, from the cache unless refresh is set or the server changed them."""
        if self._tools is not None and not refresh:
            return self._tools
        client = self._require_client()
        tools: dict[str, ToolInfo] = {}
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="refresh" if cursor is None else "use")
            for tool in page.tools:
                hints = tool.annotations
                tools[tool.name] = ToolInfo(
                    name=tool.name,
                    description=tool.description or "",
                    input_schema=_to_json_object(tool.input_schema),
                    output_schema=_to_json_object(tool.output_schema) if tool.output_schema is not None else None,
                    read_only=bool(hints is not None and hints.read_only_hint),
                    idempotent=bool(hints is not None and hints.idempotent_hint),
                )
            cursor = page.next_cursor
            if cursor is None:
                break
        self._tools = tools
        return tools

    async def list_resources(self) -> list[ResourceInfo]:
        """Return the resources the server lists now, in the server's order; empty when it has none."""
        client = self._require_client()
        if client.server_capabilities.resources is None:
            return []
        resources: list[ResourceInfo] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await client.list_resources(cursor=cursor, cache_mode="refresh")
            for resource in page.resources:
                resources.append(
                    ResourceInfo(
                        uri=str(resource.uri),
                        name=resource.name,
                        description=resource.description or "",
                        mime_type=resource.mime_type,
                    )
                )
            cursor = page.next_cursor
            if cursor is None:
                break
        return resources

    async def list_prompts(self) -> list[PromptInfo]:
        """Return the prompt templates the server lists now, in the server's order; empty when it has none."""
        client = self._require_client()
        if client.server_capabilities.prompts is None:
            return []
        prompts: list[PromptInfo] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await client.list_prompts(cursor=cursor, cache_mode="refresh")
            for prompt in page.prompts:
                arguments = tuple(
                    PromptArgument(
                        name=argument.name, description=argument.description or "", required=bool(argument.required)
                    )
                    for argument in prompt.arguments or ()
                )
                prompts.append(PromptInfo(name=prompt.name, description=prompt.description or "", arguments=arguments))
            cursor = page.next_cursor
            if cursor is None:
                break
        return prompts

    async def call_tool(
        self,
        tool: str,
        arguments: Mapping[str, JsonValue],
        *,
        timeout_s: float | None,
        on_progress: ProgressCallback | None,
        raise_on_error: bool,
        scope: CallScope | None = None,
        limit_name: str = CALLER_LIMIT,
    ) -> ToolResult:
        """Call a tool in the caller's task; see `McpSessionPool.call_tool` for the contract.

        `limit_name` names the setting `timeout_s` came from, so a timeout error says what to raise.
        """
        client = self._require_client()
        spec = self.spec
        max_s = spec.max_call_timeout_s
        if max_s is None and spec.reset_timeout_on_progress and timeout_s is not None:
            max_s = max(DEFAULT_MAX_CALL_S, timeout_s)
        deadline = CallDeadline(timeout_s, reset_on_progress=spec.reset_timeout_on_progress, max_s=max_s)

        scope = scope or CallScope(label="a call", allow_sampling=spec.allow_sampling)
        scope.tool = tool
        scope.deadline = deadline
        progress = _progress_forwarder(deadline, on_progress)
        try:
            with self._scopes.enter(scope):
                async with asyncio.timeout(None) as timer:
                    deadline.attach(timer)
                    await self._check_tool_listed(tool)
                    result = await client.call_tool(tool, dict(arguments), progress_callback=progress)
        except TimeoutError:
            if not timer.expired():
                raise
            raise self._timeout_error(tool, deadline, limit_name) from None
        except McpError:
            raise
        except Exception as exc:
            raise await self._call_error(tool, exc) from exc
        content = content_to_json(result.content)
        if result.is_error and raise_on_error:
            message = spec.hide_secrets(error_text(content))
            raise McpToolError(
                f"tool '{tool}' on MCP server '{self.name}' returned an error: {message}",
                server=self.name,
                tool=tool,
                tool_message=message,
            )
        value = result_value(result.structured_content, content)
        return ToolResult(value=value, content=content, is_error=result.is_error)

    def _timeout_error(self, tool: str, deadline: CallDeadline, limit_name: str) -> McpTimeoutError:
        where = f"tool '{tool}' on MCP server '{self.name}'"
        if deadline.expired_by_cap():
            limit = deadline.max_s or 0.0
            message = (
                f"{where} did not finish within the hard limit of {limit:g} s and was cancelled; "
                "raise max_call_timeout_s of the MCP instance if the tool needs longer"
            )
        elif deadline.reset_on_progress and deadline.progress_seen:
            limit = deadline.timeout_s or 0.0
            message = (
                f"{where} sent no progress for {limit:g} s and was cancelled; "
                f"raise {limit_name} if the tool pauses longer between updates"
            )
        else:
            limit = deadline.timeout_s or 0.0
            message = (
                f"{where} did not finish within {limit:g} s and was cancelled; "
                f"raise {limit_name} if the tool needs longer"
            )
        return McpTimeoutError(message, server=self.name, tool=tool, timeout_s=limit)

    async def _check_tool_listed(self, tool: str) -> None:
        tools = await self.list_tools()
        if tool in tools:
            return
        # The server may have added tools since the cached listing.
        tools = await self.list_tools(refresh=True)
        if tool in tools:
            return
        names = sorted(tools)
        matches = difflib.get_close_matches(tool, names, n=3, cutoff=0.6)
        if matches:
            hint = "did you mean " + ", ".join(f"'{name}'" for name in matches) + "?"
        else:
            listed = ", ".join(names[:15]) + (", ..." if len(names) > 15 else "")
            hint = f"the server offers: {listed or 'no tools'}"
        raise McpUnknownToolError(
            f"MCP server '{self.name}' has no tool '{tool}'; {hint}",
            server=self.name,
            tool=tool,
            close_matches=matches,
        )

    def _require_client(self) -> Client:
        if self._client is None or not self.alive:
            raise McpServerCrashedError(
                f"the session to MCP server '{self.name}' is closed; call again to start a new one",
                server=self.name,
                stderr_tail=self.stderr_tail(),
            )
        return self._client

    def _check_command(self) -> None:
        """Raise McpConnectError when the stdio command or working directory does not exist."""
        spec = self.spec
        if spec.transport != "stdio" or spec.command is None:
            return
        if spec.cwd is not None and not os.path.isdir(spec.cwd):
            raise McpConnectError(
                f"working directory '{spec.cwd}' of MCP server '{self.name}' was not found; "
                "check the MCP instance's working directory",
                server=self.name,
            )
        env = get_default_environment() | dict(spec.env or {})
        if os.sep in spec.command:
            base = spec.cwd or os.getcwd()
            found = os.path.exists(os.path.join(base, spec.command))
        else:
            found = shutil.which(spec.command, path=env.get("PATH")) is not None
        if not found:
            raise McpConnectError(
                f"command '{spec.command}' was not found; check the MCP instance's command or install the server",
                server=self.name,
            )

    async def _own(self) -> None:
        """Owner task: enter the client, wait for close() or a lost connection, exit the client."""
        try:
            async with AsyncExitStack() as stack:
                self._client = await self._enter_client(stack)
                self._ready.set()
                await self._stop.wait()
        except Exception as exc:
            if not self._ready.is_set():
                self._failure = exc
            else:
                logger.debug("MCP session to %s ended with %r", self.name, exc)
        finally:
            self._client = None
            self._ready.set()

    async def _enter_client(self, stack: AsyncExitStack) -> Client:
        spec = self.spec
        if spec.transport == "stdio":
            assert spec.command is not None
            self.stderr = StderrRing(
                self.name, on_line=self._on_stderr_line, on_closed=self._on_stderr_closed, hide=spec.hide_secrets
            )
            params = StdioServerParameters(
                command=spec.command,
                args=list(spec.args),
                env=dict(spec.env) if spec.env else None,
                cwd=spec.cwd,
            )
            try:
                transport = stdio_client(params, errlog=self.stderr.errlog)
                return await stack.enter_async_context(self._new_client(transport))
            finally:
                # The child has its own copy now, so closing ours lets the reader reach end of file.
                self.stderr.release_writer()
        assert spec.url is not None
        self._auth = await self._connection_auth()
        if spec.transport == "sse":
            # The SSE transport builds its client itself, through the factory, around its own timeouts.
            transport = sse_client(
                spec.url,
                headers=dict(spec.headers or {}),
                timeout=HTTP_TIMEOUT.connect or 30.0,
                sse_read_timeout=HTTP_TIMEOUT.read or 300.0,
                httpx_client_factory=self._http_client,
                auth=self._auth,
            )
            return await stack.enter_async_context(self._new_client(transport))
        http_client = self._http_client(dict(spec.headers or {}), _streamable_http_timeout(spec), self._auth)
        await stack.enter_async_context(http_client)
        transport = streamable_http_client(spec.url, http_client=http_client)
        return await stack.enter_async_context(self._new_client(transport))

    def _http_client(
        self,
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
    ) -> httpx2.AsyncClient:
        """Return the HTTP client of a remote session, which records failed replies for error messages."""
        return httpx2.AsyncClient(
            headers=headers,
            timeout=timeout or HTTP_TIMEOUT,
            auth=auth,
            event_hooks={"response": [self._on_http_response]},
        )

    async def _connection_auth(self) -> RecordingAuth | None:
        """Return the auth of the spec's ``auth_connection_id``; None when the spec names no connection.

        Raises:
            McpAuthError: this session was made without a way to read connections, or the connection
                or its secret is missing or unreadable.
        """
        connection_id = self.spec.auth_connection_id
        if connection_id is None:
            return None
        label = self.spec.credential_source or connection_id
        if self._http_auth_factory is None:
            raise McpAuthError(
                f"MCP server '{self.name}' authenticates with connection '{label}', but this session was "
                "started without access to the project's connections; start it from an engine or instance session",
                server=self.name,
            )
        try:
            return RecordingAuth(await self._http_auth_factory(connection_id))
        except SecretsError as error:
            raise McpAuthError(f"MCP server '{self.name}' cannot authenticate: {error}", server=self.name) from None

    async def _on_http_response(self, response: httpx2.Response) -> None:
        """Remember the last reply that cannot be MCP, because the SDK reports it without status or content type.

        A later success clears it: the auth retries a request once after a 401 with a renewed token.
        """
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        wrong_type = response.status_code == 200 and content_type not in MCP_CONTENT_TYPES
        if response.status_code >= 400 or wrong_type:
            self.http_failure = (response.status_code, content_type)
        elif response.status_code < 300:
            self.http_failure = None

    def _auth_error(self, where: str) -> McpAuthError | None:
        """Return the error for a failed authentication or an HTTP 401 or 403 reply; None for other failures."""
        if self._auth is not None and self._auth.failure is not None:
            return McpAuthError(f"{where} could not be authenticated: {self._auth.failure}", server=self.name)
        if self.http_failure is None or self.http_failure[0] not in (401, 403):
            return None
        status = self.http_failure[0]
        if self.spec.auth_connection_id is not None:
            label = self.spec.credential_source or self.spec.auth_connection_id
            fix = f"sign in to connection '{label}' again, or check that it is the right connection for this server"
        elif self.spec.credential_source:
            fix = f"update the token of connection '{self.spec.credential_source}'"
        elif self.spec.headers:
            fix = "update the token in the MCP instance's headers (or the connection bound to them)"
        else:
            fix = "bind a connection with a valid token to the MCP instance's Authorization header"
        if status == 401:
            problem = "rejected the request with HTTP 401 Unauthorized: the token is missing or expired"
        else:
            problem = "rejected the request with HTTP 403 Forbidden: the token has expired or lacks permission"
        return McpAuthError(f"{where} {problem}; {fix}", server=self.name)

    def _new_client(self, transport: Any) -> Client:
        return Client(
            transport,
            mode=self._mode,
            client_info=CLIENT_INFO,
            message_handler=self._on_message,
            sampling_callback=self._handlers.sampling,
            elicitation_callback=self._handlers.elicitation,
            list_roots_callback=self._handlers.list_roots,
        )

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, mcp_types.ToolListChangedNotification):
            logger.debug("MCP server %s changed its tool list", self.name)
            self._tools = None
        elif isinstance(message, ValidationError | ValueError) and self.spec.transport == "stdio":
            self._on_stdout_garbage(message)
        await anyio.lowlevel.checkpoint()

    def _on_stdout_garbage(self, error: ValueError) -> None:
        """End the session on the first stdout line that is not JSON-RPC, instead of waiting for a timeout.

        A server that prints anything else to stdout corrupts the protocol stream, and the request
        it was serving would otherwise wait until its time limit.
        """
        if self.stdout_garbage is not None:
            return
        line = _offending_input(error)
        self.stdout_garbage = line
        logger.warning("MCP server %s wrote a line to stdout that is not JSON-RPC: %r", self.name, line)
        self._lost = True
        self._stop.set()

    async def _cancel_owner(self) -> None:
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            # Re-raise only when the caller itself is being cancelled, not for the owner's own cancel.
            if current is not None and current.cancelling():
                raise

    async def _settled_stderr_tail(self) -> str:
        if self.stderr is None:
            return ""
        await self.stderr.wait_closed(STDERR_SETTLE_S)
        return self.stderr.tail()

    async def _connect_error(self, failure: BaseException) -> McpConnectError:
        leaves = leaf_exceptions(failure)
        spec = self.spec
        tail = await self._settled_stderr_tail()
        where = f"MCP server '{self.name}'"
        if spec.transport != "stdio" and spec.url is not None and self.name != redact_url(spec.url):
            where += f" at {redact_url(spec.url)}"
        for leaf in leaves:
            if isinstance(leaf, McpConnectError):
                return leaf
        auth = self._auth_error(where)
        if auth is not None:
            return auth
        for leaf in leaves:
            if isinstance(leaf, FileNotFoundError | PermissionError) and spec.transport == "stdio":
                interpreter = _missing_interpreter(spec) if isinstance(leaf, FileNotFoundError) else None
                if interpreter is not None:
                    return McpConnectError(
                        f"command '{spec.command}' starts with '#!{interpreter}', and that interpreter was not "
                        "found; reinstall the server (a moved virtual environment leaves such scripts behind) "
                        "or fix the script's first line",
                        server=self.name,
                    )
                verb = "was not found" if isinstance(leaf, FileNotFoundError) else "is not executable"
                return McpConnectError(
                    f"command '{spec.command}' {verb}; check the MCP instance's command or install the server",
                    server=self.name,
                )
            if _is_connection_closed(leaf) and spec.transport == "stdio":
                return McpConnectError(
                    f"{where} exited during startup, before completing the MCP handshake; "
                    "check its command, arguments and environment",
                    server=self.name,
                    stderr_tail=tail,
                )
            if isinstance(leaf, httpx2.TransportError) and self.http_failure is None:
                return McpConnectError(
                    f"could not connect to {where}: {type(leaf).__name__}: {leaf}; "
                    "check that the server is running and the URL is right",
                    server=self.name,
                )
            if isinstance(leaf, MCPError | httpx2.TransportError) and self.http_failure is not None:
                # The SSE transport raises a transport error for a reply that is not an event stream.
                status, content_type = self.http_failure
                reason = leaf.error.message if isinstance(leaf, MCPError) else str(leaf)
                usual = "a streamable HTTP endpoint usually ends in /mcp"
                if spec.transport == "sse":
                    usual = "an SSE endpoint usually ends in /sse"
                return McpConnectError(
                    f"{where} did not respond as an MCP server: it returned HTTP {status} "
                    f"with {content_type or 'no content type'} ({reason}); check the URL ({usual})",
                    server=self.name,
                )
            if isinstance(leaf, MCPError):
                return McpConnectError(
                    f"{where} did not respond as an MCP server ({leaf.error.message}); check the URL or command "
                    "(a streamable HTTP endpoint usually ends in /mcp)",
                    server=self.name,
                    stderr_tail=tail,
                )
        first = leaves[0] if leaves else failure
        return McpConnectError(
            f"{where} failed to start: {type(first).__name__}: {first}",
            server=self.name,
            stderr_tail=tail,
        )

    async def _call_error(self, tool: str, exc: Exception) -> McpError:
        """Translate an exception from a tool call into the McpError raised to the caller."""
        leaves = leaf_exceptions(exc)
        auth = self._auth_error(f"MCP server '{self.name}'")
        if auth is not None:
            self._lost = True
            self._stop.set()
            return auth
        if any(_is_connection_closed(leaf) or isinstance(leaf, _CONNECTION_LOST_ERRORS) for leaf in leaves):
            self._lost = True
            self._stop.set()
            logger.warning("MCP server %s was lost during a call to tool %s", self.name, tool)
            if self.stdout_garbage is not None:
                return McpStdoutError(
                    f"MCP server '{self.name}' wrote {self.stdout_garbage!r} to stdout while tool '{tool}' "
                    f"was running, so the session was closed; {STDOUT_RULE}",
                    server=self.name,
                    tool=tool,
                    stderr_tail=self.stderr_tail(),
                )
            return McpServerCrashedError(
                f"MCP server '{self.name}' stopped or dropped the connection while tool '{tool}' was running; "
                "the next call starts a new session",
                server=self.name,
                tool=tool,
                stderr_tail=await self._settled_stderr_tail(),
            )
        for leaf in leaves:
            if isinstance(leaf, MCPError):
                return McpProtocolError(
                    f"MCP server '{self.name}' rejected the call to tool '{tool}' with error {leaf.code}: "
                    f"{leaf.error.message}{_rejection_hint(leaf.code)}",
                    server=self.name,
                    tool=tool,
                )
            if isinstance(leaf, RuntimeError | ValidationError):
                return McpProtocolError(
                    f"tool '{tool}' on MCP server '{self.name}' returned an invalid result: {leaf}",
                    server=self.name,
                    tool=tool,
                )
        return McpProtocolError(
            f"call to tool '{tool}' on MCP server '{self.name}' failed: {type(exc).__name__}: {exc}",
            server=self.name,
            tool=tool,
        )


def _streamable_http_timeout(spec: McpServerSpec) -> httpx2.Timeout:
    """Return the HTTP timeouts of a streamable HTTP session, whose idle read limit never cuts a call short.

    A tool's reply streams on the response to its request, and a tool that sends no progress keeps
    that response silent for its whole run. So the read limit is at least the spec's call limits,
    and there is none when the spec sets no call timeout, which leaves the limit to each call.

    NOTE: a time limit a caller gives a single call is not known here, so a silent tool can still
    hit the read limit when that limit is longer than the spec's.
    """
    if spec.call_timeout_s is None:
        return httpx2.Timeout(HTTP_TIMEOUT.connect, read=None, write=HTTP_TIMEOUT.write, pool=HTTP_TIMEOUT.pool)
    read = max(HTTP_TIMEOUT.read or 0.0, spec.call_timeout_s, spec.max_call_timeout_s or 0.0)
    return httpx2.Timeout(HTTP_TIMEOUT.connect, read=read, write=HTTP_TIMEOUT.write, pool=HTTP_TIMEOUT.pool)


def _missing_interpreter(spec: McpServerSpec) -> str | None:
    """Return the interpreter line of the stdio command when the command is a script whose interpreter is missing.

    Starting such a script fails with the same error as a missing command, although the script exists.
    """
    command = spec.command or ""
    if os.sep not in command:
        command = shutil.which(command, path=(spec.env or {}).get("PATH")) or ""
    elif spec.cwd is not None:
        command = os.path.join(spec.cwd, command)
    try:
        with open(command, "rb") as script:
            first_line = script.readline(512)
    except OSError:
        return None
    if not first_line.startswith(b"#!"):
        return None
    words = first_line[2:].decode("utf-8", errors="replace").split()
    if not words or os.path.exists(words[0]):
        return None
    return " ".join(words)


def _rejection_hint(code: int) -> str:
    """Return what to do about a JSON-RPC error code, or '' when the server's own message is all there is."""
    if code == mcp_types.INVALID_PARAMS:
        return "; check the tool's arguments"
    if code == mcp_types.METHOD_NOT_FOUND:
        return "; the server does not support this request, so check that it is the right server"
    return ""


async def _first_of(*waits: Any) -> None:
    """Wait until the first of the given coroutines finishes, then cancel the others."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _offending_input(error: ValueError) -> str:
    """Return the stdout line a JSON-RPC parse error complains about, cut to 200 characters."""
    line = ""
    if isinstance(error, ValidationError):
        for detail in error.errors():
            if isinstance(detail.get("input"), str):
                line = detail["input"]
                break
    if not line:
        line = str(error)
    return line if len(line) <= 200 else line[:200] + "..."


def _to_json_object(schema: Mapping[str, Any]) -> dict[str, JsonValue]:
    return {str(key): value for key, value in schema.items()}


def _progress_forwarder(deadline: CallDeadline, on_progress: ProgressCallback | None) -> ProgressFnT:
    async def forward(progress: float, total: float | None, message: str | None) -> None:
        deadline.on_progress()
        if on_progress is not None:
            on_progress(progress, total, message)

    return forward
