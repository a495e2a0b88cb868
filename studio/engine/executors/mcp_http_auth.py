"""HTTP authentication of remote MCP sessions with a stored connection, and the failures it reports."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator

import httpx2

from studio.secrets.vault import SecretsError

logger = logging.getLogger(__name__)

HttpAuthFactory = Callable[[str], Awaitable[httpx2.Auth]]
"""Build the httpx2 authentication of a connection id (see ``studio.mcp.resolve.connection_auth_factory``).

It raises ``SecretsError`` when the connection or its secret is missing or unreadable."""


class RecordingAuth(httpx2.Auth):
    """Apply another auth and keep the secrets error it raised (a refused token refresh, say).

    The MCP SDK runs each request in a task of its own and reports a failed one only as a lost
    connection, so the session reads ``failure`` to tell the user what to fix.
    """

    def __init__(self, inner: httpx2.Auth) -> None:
        self._inner = inner
        self.failure: SecretsError | None = None

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        flow = self._inner.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return
        except SecretsError as error:
            self.failure = error
            logger.warning("authenticating a request to %s failed: %s", request.url.host, error)
            raise
        finally:
            await flow.aclose()

    def sync_auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        raise TypeError("RecordingAuth serves the async client of an MCP session only")
