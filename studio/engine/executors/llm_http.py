"""HTTP layer shared by LLM providers: sending, retrying 429 and 5xx replies, and mapping transport errors."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx

from studio.engine.executors.llm_errors import (
    LlmConfigError,
    LlmConnectError,
    LlmHttpError,
    LlmProtocolError,
    LlmRateLimitError,
    LlmTimeoutError,
    hint_for_status,
    redact,
)
from studio.engine.executors.llm_types import DeltaCallback, LlmEndpoint, ProviderReply

logger = logging.getLogger(__name__)

# Statuses retried inside one call. Other retryable statuses are left to the engine's retry policy.
# 529 is Anthropic's "overloaded" status.
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
# Largest backoff delay in seconds when the server sends no Retry-After.
_MAX_BACKOFF_S = 30.0
# Bytes of an error body read for the excerpt; the rest is discarded.
_ERROR_BODY_LIMIT = 8192
_EXCERPT_CHARS = 300


def secrets_of(endpoint: LlmEndpoint) -> list[str | None]:
    """Return the values that must never appear in messages: the API key and all extra header values."""
    return [endpoint.api_key, *endpoint.extra_headers.values()]


def build_headers(endpoint: LlmEndpoint, *, stream: bool) -> dict[str, str]:
    """Return the request headers: authorization, accepted media type, then the endpoint's extra headers.

    Anthropic takes the key in ``x-api-key`` and needs ``anthropic-version``; the other providers take
    ``Authorization: Bearer``. Ollama streams newline-delimited JSON instead of server-sent events.
    """
    if not stream:
        accept = "application/json"
    elif endpoint.provider == "ollama":
        accept = "application/x-ndjson"
    else:
        accept = "text/event-stream"
    headers = {"Accept": accept}
    if endpoint.provider == "anthropic":
        headers["anthropic-version"] = endpoint.anthropic_version
        if endpoint.api_key:
            headers["x-api-key"] = endpoint.api_key
    elif endpoint.api_key:
        headers["Authorization"] = f"Bearer {endpoint.api_key}"
    headers.update(endpoint.extra_headers)
    return headers


@asynccontextmanager
async def open_response(
    client: httpx.AsyncClient,
    endpoint: LlmEndpoint,
    body: Mapping[str, Any] | None,
    *,
    stream: bool,
    output_schema_requested: bool,
    url: str | None = None,
    params: Mapping[str, str] | None = None,
) -> AsyncIterator[httpx.Response]:
    """POST ``body`` to ``url`` (default: the endpoint's chat URL) and yield the first 2xx response, unread.

    A ``body`` of None sends a GET with ``params`` instead, as model listing needs.

    HTTP 429 and 5xx replies are retried up to ``endpoint.max_rate_limit_retries`` times, honouring
    Retry-After. Transport errors, also those raised while the caller reads the yielded response,
    become LlmTimeoutError, LlmConnectError or LlmProtocolError.

    Raises:
        LlmRateLimitError: HTTP 429 after the retries, or a Retry-After longer than max_retry_wait_s.
        LlmHttpError: any other non-2xx status (after the retries for 5xx).
    """
    url = url or endpoint.chat_url
    method = "GET" if body is None else "POST"
    headers = build_headers(endpoint, stream=stream)
    timeout = httpx.Timeout(endpoint.request_timeout_s)
    secrets = secrets_of(endpoint)
    retries_done = 0
    while True:
        model = None if body is None else body.get("model")
        logger.debug("LLM request %s %s model=%s stream=%s retry=%d", method, url, model, stream, retries_done)
        error: LlmHttpError
        with _mapped_transport_errors(endpoint, secrets):
            async with client.stream(
                method, url, json=body, params=params, headers=headers, timeout=timeout
            ) as response:
                if response.is_success:
                    yield response
                    return
                excerpt = await read_body_excerpt(response, secrets)
                retry_after_s = parse_retry_after(response.headers)
                error = _status_error(
                    response.status_code, excerpt, url, retry_after_s, output_schema_requested, endpoint.provider
                )

        delay_s = _retry_delay(endpoint, error, retry_after_s, retries_done)
        if delay_s is None:
            raise error
        retries_done += 1
        logger.warning(
            "LLM server at %s replied HTTP %d; retry %d of %d in %.2f s",
            url,
            error.status,
            retries_done,
            endpoint.max_rate_limit_retries,
            delay_s,
        )
        await asyncio.sleep(delay_s)


StreamReader = Callable[[httpx.Response], Awaitable[ProviderReply]]
ReplyParser = Callable[[bytes, str], ProviderReply]


async def exchange(
    client: httpx.AsyncClient,
    endpoint: LlmEndpoint,
    body: Mapping[str, Any],
    *,
    stream: bool,
    stream_media_type: str,
    read_stream: StreamReader,
    parse_reply: ReplyParser,
    on_delta: DeltaCallback | None,
    output_schema_requested: bool,
) -> ProviderReply:
    """POST a chat request body and return the provider's reply, streamed or not.

    A 2xx reply whose content type contains ``stream_media_type`` goes to ``read_stream``. Any other 2xx reply
    (also a server that ignored ``stream: true``) is read whole and parsed by ``parse_reply(body bytes,
    content type)``, and its text reaches ``on_delta`` in one piece.

    Raises:
        LlmError: see open_response and the provider's reader and parser.
    """
    async with open_response(
        client, endpoint, body, stream=stream, output_schema_requested=output_schema_requested
    ) as response:
        content_type = response.headers.get("content-type", "").lower()
        if stream and stream_media_type in content_type:
            return await read_stream(response)
        if stream:
            logger.debug("LLM server at %s ignored stream=true and sent %r", endpoint.chat_url, content_type)
        reply = parse_reply(await response.aread(), content_type)
    if on_delta is not None and reply.text:
        on_delta(reply.text)
    return reply


async def get_json(
    client: httpx.AsyncClient, endpoint: LlmEndpoint, url: str, *, params: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """GET ``url`` with the endpoint's headers and retries, and return the reply's JSON object.

    Raises:
        LlmProtocolError: the reply is not a JSON object (an HTML page, for example).
        LlmError: the request failed; see open_response.
    """
    async with open_response(
        client, endpoint, None, stream=False, output_schema_requested=False, url=url, params=params
    ) as response:
        raw = await response.aread()
    content_type = response.headers.get("content-type", "")
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise LlmProtocolError(
            f"LLM server at {url} did not send a JSON object ({describe_body(raw, content_type)}); check the base URL"
        )
    return data


def _status_error(
    status: int, excerpt: str, url: str, retry_after_s: float | None, output_schema_requested: bool, provider: str
) -> LlmHttpError:
    hint = hint_for_status(status, output_schema_requested=output_schema_requested, provider=provider)
    if status == 429:
        return LlmRateLimitError(status, excerpt, url=url, hint=hint, retry_after_s=retry_after_s)
    return LlmHttpError(status, excerpt, url=url, hint=hint)


def _retry_delay(
    endpoint: LlmEndpoint, error: LlmHttpError, retry_after_s: float | None, retries_done: int
) -> float | None:
    """Return how long to wait before the next try, or None when the error must be raised now."""
    if error.status not in RETRIED_STATUSES or retries_done >= endpoint.max_rate_limit_retries:
        return None
    if retry_after_s is None:
        return backoff_delay(endpoint.retry_backoff_base_s, retries_done)
    if retry_after_s > endpoint.max_retry_wait_s:
        logger.warning(
            "LLM server at %s asked to wait %.1f s, more than max_retry_wait_s=%.1f s; not retrying",
            error.url,
            retry_after_s,
            endpoint.max_retry_wait_s,
        )
        return None
    return retry_after_s


def backoff_delay(base_s: float, retries_done: int) -> float:
    """Return an exponential backoff delay with jitter: between half and all of base * 2**retries_done."""
    ceiling = min(_MAX_BACKOFF_S, base_s * 2.0**retries_done)
    return ceiling * random.uniform(0.5, 1.0)


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Return the wait in seconds that a reply requests, or None when the reply has no valid wait.

    Reads the non-standard ``retry-after-ms`` header first, then ``Retry-After`` as seconds (fractions
    allowed) or as an HTTP date.
    """
    milliseconds = _parse_seconds(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _parse_seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        logger.debug("ignoring invalid Retry-After header %r", value)
        return None
    return max(0.0, when.timestamp() - time.time())


def _parse_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


async def read_body_excerpt(response: httpx.Response, secrets: list[str | None]) -> str:
    """Read at most a few kilobytes of ``response`` and return a short one-line summary with secrets removed."""
    raw = bytearray()
    async for chunk in response.aiter_bytes():
        raw.extend(chunk)
        if len(raw) >= _ERROR_BODY_LIMIT:
            break
    return redact(describe_body(bytes(raw), response.headers.get("content-type", "")), secrets)


def describe_body(raw: bytes, content_type: str) -> str:
    """Return a short summary of a reply body: the API's error message, the HTML title, or the first characters."""
    text = raw.decode("utf-8", errors="replace")
    if "html" in content_type.lower() or text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, flags=re.IGNORECASE | re.DOTALL)
        title_text = f" titled {_one_line(title.group(1))!r}" if title else ""
        return f"an HTML page{title_text}, not an API reply"
    message = _json_error_message(text)
    return _one_line(message if message is not None else text)


def _json_error_message(text: str) -> str | None:
    """Return the message of an error body, or None.

    Reads OpenAI's and Anthropic's ``{"error": {"message": ...}}`` and Ollama's ``{"error": "..."}``.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error", data)
    if isinstance(error, dict):
        for key in ("message", "detail"):
            if isinstance(error.get(key), str):
                return str(error[key])
    if isinstance(error, str):
        return error
    return None


def _one_line(text: str) -> str:
    collapsed = " ".join(text.split())
    if len(collapsed) > _EXCERPT_CHARS:
        return collapsed[:_EXCERPT_CHARS] + "..."
    return collapsed


@contextmanager
def _mapped_transport_errors(endpoint: LlmEndpoint, secrets: list[str | None]) -> Iterator[None]:
    """Turn httpx transport errors raised inside the block into LLM errors with secrets removed."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise map_transport_error(exc, endpoint, secrets) from exc


def map_transport_error(
    exc: httpx.HTTPError, endpoint: LlmEndpoint, secrets: list[str | None]
) -> LlmConfigError | LlmTimeoutError | LlmConnectError | LlmProtocolError:
    """Return the LLM error for an httpx exception, with a message that names the server and the next step."""
    base_url = endpoint.base_url
    detail = redact(str(exc) or type(exc).__name__, secrets)
    limit = endpoint.request_timeout_s
    if isinstance(exc, httpx.ConnectTimeout):
        return LlmTimeoutError(f"connecting to the LLM server at {base_url} timed out after {limit:g} s")
    if isinstance(exc, httpx.ReadTimeout):
        return LlmTimeoutError(
            f"LLM server at {base_url} sent no data for {limit:g} s (request_timeout_s); "
            "the server may be overloaded or stuck"
        )
    if isinstance(exc, httpx.TimeoutException):
        return LlmTimeoutError(f"request to the LLM server at {base_url} timed out after {limit:g} s: {detail}")
    if isinstance(exc, httpx.ConnectError):
        return LlmConnectError(
            f"no server at {base_url} ({detail}); is Ollama or the gateway running, and is the base URL right?"
        )
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return LlmProtocolError(
            f"LLM server at {base_url} closed the connection before the reply was complete: {detail}",
            retryable=True,
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return LlmConfigError(f"invalid LLM base URL {base_url!r}: {detail}")
    return LlmConnectError(f"request to the LLM server at {base_url} failed: {detail}")
