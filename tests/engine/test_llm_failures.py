"""Tests of the LLM client's failure handling: retries, HTTP errors, bad replies, timeouts, cancellation, secrets."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from studio.engine.executors.llm import (
    ChatRequest,
    LlmConnectError,
    LlmEndpoint,
    LlmError,
    LlmHttpError,
    LlmProtocolError,
    LlmRateLimitError,
    LlmTimeoutError,
    chat_completion,
)
from studio.engine.executors.llm_http import backoff_delay, parse_retry_after
from tests.fakes.openai_server import (
    FakeOpenAIServer,
    Hang,
    RawStream,
    TextReply,
    error_json,
    html_page,
    openai_server,
    rate_limited,
    server_error,
)

API_KEY = "sk-test-7f3a9c2e51d84b06"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with openai_server() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http_client:
        yield http_client


def endpoint_for(server: FakeOpenAIServer, **options: object) -> LlmEndpoint:
    options.setdefault("retry_backoff_base_s", 0.01)
    return LlmEndpoint("openai", server.base_url, **options)  # type: ignore[arg-type]


REQUEST = ChatRequest("fake-model", None, "Say hello")


# --- retries -----------------------------------------------------------------------------------


async def test_rate_limit_retried_then_success(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(rate_limited("0.05"), rate_limited("0.05"), TextReply("finally"))
    started = time.monotonic()

    result = await chat_completion(client, endpoint_for(server), REQUEST)

    assert result.text == "finally"
    assert len(server.chat_requests) == 3
    assert time.monotonic() - started >= 0.1


async def test_rate_limit_retries_used_up(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(*[rate_limited("0.02")] * 3)

    with pytest.raises(LlmRateLimitError) as caught:
        await chat_completion(client, endpoint_for(server, max_rate_limit_retries=2), REQUEST)

    error = caught.value
    assert len(server.chat_requests) == 3
    assert error.status == 429
    assert error.retryable is True
    assert error.retry_after_s == pytest.approx(0.02)
    assert "Rate limit reached" in error.message
    assert "HTTP 429" in error.message


async def test_retry_after_above_limit_fails_at_once(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(rate_limited("120"))

    with pytest.raises(LlmRateLimitError) as caught:
        await chat_completion(client, endpoint_for(server, max_retry_wait_s=5.0), REQUEST)

    assert len(server.chat_requests) == 1
    assert caught.value.retry_after_s == 120.0


async def test_server_error_backoff_then_success(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(server_error(500), server_error(503, retry_after="0.01"), TextReply("recovered"))

    result = await chat_completion(client, endpoint_for(server), REQUEST)

    assert result.text == "recovered"
    assert len(server.chat_requests) == 3


async def test_server_error_retries_used_up(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.set_default(server_error(502))

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint_for(server, max_rate_limit_retries=1), REQUEST)

    error = caught.value
    assert not isinstance(error, LlmRateLimitError)
    assert error.status == 502
    assert error.retryable is True
    assert len(server.chat_requests) == 2
    assert "retry later" in error.message


async def test_zero_retries_sends_once(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(rate_limited("0.01"))

    with pytest.raises(LlmRateLimitError):
        await chat_completion(client, endpoint_for(server, max_rate_limit_retries=0), REQUEST)

    assert len(server.chat_requests) == 1


async def test_client_error_not_retried(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(error_json(400, "Invalid value for 'temperature'"))

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint_for(server), REQUEST)

    assert len(server.chat_requests) == 1
    assert caught.value.status == 400
    assert caught.value.retryable is False
    assert "Invalid value for 'temperature'" in caught.value.message


def test_retry_after_seconds_and_fractions() -> None:
    assert parse_retry_after(httpx.Headers({"Retry-After": "3"})) == 3.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "0.05"})) == 0.05
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "250", "Retry-After": "9"})) == 0.25
    assert parse_retry_after(httpx.Headers({})) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Headers({"Retry-After": "-1"})) is None


def test_retry_after_http_date() -> None:
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    past = email.utils.formatdate(time.time() - 30, usegmt=True)

    wait_s = parse_retry_after(httpx.Headers({"Retry-After": future}))

    assert wait_s is not None
    assert 28.0 <= wait_s <= 30.0
    assert parse_retry_after(httpx.Headers({"Retry-After": past})) == 0.0


def test_backoff_grows_with_jitter() -> None:
    delays = [backoff_delay(1.0, retries_done) for retries_done in range(4)]

    for retries_done, delay in enumerate(delays):
        assert 0.5 * 2**retries_done <= delay <= 2**retries_done
    assert backoff_delay(1.0, 20) <= 30.0


# --- HTTP and protocol errors ------------------------------------------------------------------


async def test_wrong_api_key_gets_hint(client: httpx.AsyncClient) -> None:
    with openai_server(api_key="sk-right-key-000") as running:
        endpoint = LlmEndpoint("openai", running.base_url, api_key=API_KEY)
        with pytest.raises(LlmHttpError) as caught:
            await chat_completion(client, endpoint, REQUEST)

    error = caught.value
    assert error.status == 401
    assert error.retryable is False
    assert error.hint == "check the API key"
    assert "check the API key" in error.message
    assert "Incorrect API key provided" in error.message


async def test_right_api_key_accepted(client: httpx.AsyncClient) -> None:
    with openai_server(api_key=API_KEY) as running:
        result = await chat_completion(client, LlmEndpoint("openai", running.base_url, api_key=API_KEY), REQUEST)

    assert result.text == "echo: Say hello"


async def test_wrong_base_url_gets_hint(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    endpoint = LlmEndpoint("openai", server.base_url.removesuffix("/v1"))

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint, REQUEST)

    assert caught.value.status == 404
    assert server.requests[0].path == "/chat/completions"
    assert "check the base URL" in caught.value.message


@pytest.mark.parametrize("stream", [True, False])
async def test_html_page_is_protocol_error(server: FakeOpenAIServer, client: httpx.AsyncClient, stream: bool) -> None:
    server.script(html_page())

    with pytest.raises(LlmProtocolError) as caught:
        await chat_completion(client, endpoint_for(server), REQUEST, stream=stream)

    assert "HTML page" in caught.value.message
    assert "Welcome to nginx!" in caught.value.message
    assert "<html>" not in caught.value.message
    assert "not an API reply instead of" not in caught.value.message


async def test_html_error_page_summarised(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(html_page(status=403))

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint_for(server), REQUEST)

    assert caught.value.status == 403
    assert "an HTML page titled 'Welcome to nginx!'" in caught.value.message


async def test_stream_chunk_not_json(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(RawStream(["data: {not json", "", "data: [DONE]", ""]))

    with pytest.raises(LlmProtocolError) as caught:
        await chat_completion(client, endpoint_for(server), REQUEST)

    assert "not JSON" in caught.value.message
    assert "{not json" in caught.value.message


async def test_stream_chunk_without_choices(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(RawStream(['data: {"id": "x", "object": "chat.completion.chunk"}', "", "data: [DONE]", ""]))

    with pytest.raises(LlmProtocolError) as caught:
        await chat_completion(client, endpoint_for(server), REQUEST)

    assert "without a 'choices' list" in caught.value.message


async def test_stream_cut_off_before_done(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(RawStream(['data: {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}', ""]))

    with pytest.raises(LlmProtocolError) as caught:
        await chat_completion(client, endpoint_for(server), REQUEST)

    assert "before 'data: [DONE]'" in caught.value.message
    assert caught.value.retryable is True


async def test_stream_without_done_but_finished(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    # A finish reason is enough to trust the reply, even when the server omits [DONE].
    lines = [
        ": keep-alive comment",
        "",
        'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": null}]}',
        "",
        'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}',
        "",
    ]
    server.script(RawStream(lines))

    result = await chat_completion(client, endpoint_for(server), REQUEST)

    assert result.text == "Hi"
    assert result.finish_reason == "stop"
    assert result.usage.estimated is True


async def test_stream_multiline_data_joined(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    lines = [
        'data: {"choices": [{"index": 0,',
        'data:  "delta": {"content": "joined"}, "finish_reason": "stop"}]}',
        "",
        "data: [DONE]",
        "",
    ]
    server.script(RawStream(lines))

    result = await chat_completion(client, endpoint_for(server), REQUEST)

    assert result.text == "joined"


async def test_error_object_inside_stream(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    lines = [
        'data: {"choices": [{"index": 0, "delta": {"content": "par"}}]}',
        "",
        'data: {"error": {"message": "backend overloaded", "type": "server_error"}}',
        "",
    ]
    server.script(RawStream(lines))

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint_for(server), REQUEST)

    assert "backend overloaded" in caught.value.message
    assert caught.value.retryable is True


async def test_non_streaming_reply_without_choices(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(error_json(200, "odd"))

    with pytest.raises(LlmProtocolError) as caught:
        await chat_completion(client, endpoint_for(server), REQUEST, stream=False)

    assert "without 'choices'" in caught.value.message


# --- timeouts, connection failures, cancellation -----------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_hanging_server_times_out(server: FakeOpenAIServer, client: httpx.AsyncClient, stream: bool) -> None:
    server.script(Hang())
    started = time.monotonic()

    with pytest.raises(LlmTimeoutError) as caught:
        await chat_completion(client, endpoint_for(server, request_timeout_s=0.3), REQUEST, stream=stream)

    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0
    assert caught.value.retryable is True
    assert "sent no data for 0.3 s" in caught.value.message


async def test_stalled_stream_times_out(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("one two three", stall_after_chunks=1))
    deltas: list[str] = []
    started = time.monotonic()

    with pytest.raises(LlmTimeoutError):
        await chat_completion(client, endpoint_for(server, request_timeout_s=0.3), REQUEST, on_delta=deltas.append)

    assert time.monotonic() - started < 2.0
    assert deltas == ["one "]


async def test_slow_stream_within_timeout(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    # The timeout applies to each gap between chunks, not to the whole reply.
    server.script(TextReply("a b c d e f", chunk_delay_s=0.1))

    result = await chat_completion(client, endpoint_for(server, request_timeout_s=0.4), REQUEST)

    assert result.text == "a b c d e f"


async def test_no_server_is_connect_error(client: httpx.AsyncClient) -> None:
    # Bind a port and close it again, so nothing listens there.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = LlmEndpoint("openai", f"http://127.0.0.1:{port}/v1")

    with pytest.raises(LlmConnectError) as caught:
        await chat_completion(client, endpoint, REQUEST)

    assert f"no server at http://127.0.0.1:{port}/v1" in caught.value.message
    assert "is Ollama or the gateway running" in caught.value.message
    assert caught.value.retryable is True


async def test_cancel_closes_stream(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("one two three four", stall_after_chunks=2))
    two_deltas = asyncio.Event()
    deltas: list[str] = []

    def on_delta(text: str) -> None:
        deltas.append(text)
        if len(deltas) == 2:
            two_deltas.set()

    call = asyncio.create_task(chat_completion(client, endpoint_for(server), REQUEST, on_delta=on_delta))
    await asyncio.wait_for(two_deltas.wait(), timeout=5)
    started = time.monotonic()
    call.cancel()

    with pytest.raises(asyncio.CancelledError):
        await call

    assert time.monotonic() - started < 0.5
    # The server detects the closed connection, so the stream was not left open in the pool.
    assert await asyncio.to_thread(server.aborted.wait, 5)
    assert server.aborted_count == 1


class _RetryWaitWatcher(logging.Handler):
    """Sets an event when the client logs that it is about to wait before a retry."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.waiting = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "retry 1 of" in record.getMessage():
            self.waiting.set()


async def test_cancel_during_retry_wait(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(rate_limited("30"))
    watcher = _RetryWaitWatcher()
    http_logger = logging.getLogger("studio.engine.executors.llm_http")
    http_logger.addHandler(watcher)
    try:
        call = asyncio.create_task(chat_completion(client, endpoint_for(server), REQUEST))
        await asyncio.wait_for(watcher.waiting.wait(), timeout=5)
        call.cancel()

        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(call, timeout=2)
    finally:
        http_logger.removeHandler(watcher)
    assert len(server.chat_requests) == 1


# --- secrets -----------------------------------------------------------------------------------


def test_endpoint_repr_hides_secrets() -> None:
    endpoint = LlmEndpoint("openai", "http://127.0.0.1:1/v1", api_key=API_KEY, extra_headers={"api-key": API_KEY})

    assert API_KEY not in repr(endpoint)
    assert API_KEY not in str(endpoint)


async def test_secret_absent_from_errors_and_logs(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # (behaviour, how many requests the call makes with one retry allowed)
    scenarios = [(rate_limited("0.01"), 2), (server_error(500), 2), (html_page(), 1), (Hang(), 1)]
    errors: list[LlmError] = []
    with openai_server(api_key="sk-other-key-1234") as running:
        endpoint = LlmEndpoint(
            "openai",
            running.base_url,
            api_key=API_KEY,
            request_timeout_s=0.3,
            max_rate_limit_retries=1,
            retry_backoff_base_s=0.01,
            extra_headers={"X-Api-Key": API_KEY},
        )
        # The server rejects the key and echoes it in its 401 body.
        with pytest.raises(LlmError) as caught:
            await chat_completion(client, endpoint, REQUEST)
        errors.append(caught.value)

        running.require_api_key(None)
        for behaviour, request_count in scenarios:
            running.script(*[behaviour] * request_count)
            with pytest.raises(LlmError) as caught:
                await chat_completion(client, endpoint, REQUEST)
            errors.append(caught.value)

    assert [type(error) for error in errors] == [
        LlmHttpError,
        LlmRateLimitError,
        LlmHttpError,
        LlmProtocolError,
        LlmTimeoutError,
    ]
    assert "[redacted]" in errors[0].message
    for error in errors:
        assert API_KEY not in str(error)
        assert API_KEY not in repr(error)
        assert all(API_KEY not in str(arg) for arg in error.args)
        assert error.__cause__ is None or API_KEY not in str(error.__cause__)
    assert caplog.records, "expected the client to log its requests and retries"
    for record in caplog.records:
        assert API_KEY not in record.getMessage()
    assert API_KEY not in caplog.text
