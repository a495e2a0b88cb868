"""Tests of the Anthropic Messages provider against the loopback Anthropic server, down to a whole engine run."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from studio.engine import EventType, ExecutorServices
from studio.engine.executors.llm import (
    ChatRequest,
    LlmConfigError,
    LlmEndpoint,
    LlmError,
    LlmHttpError,
    LlmProtocolError,
    LlmRateLimitError,
    LlmTimeoutError,
    TokenUsage,
    chat_completion,
    list_models,
)
from studio.engine.executors.llm_anthropic import DEFAULT_MAX_TOKENS
from studio.store import Store
from tests.conftest import EngineFactory, build_workflow
from tests.fakes.anthropic_server import (
    FakeAnthropicServer,
    StreamError,
    anthropic_server,
    overloaded,
    rate_limited,
    server_error,
)
from tests.fakes.openai_server import Hang, RawReply, RawStream, TextReply, html_page, json_reply

API_KEY = "sk-ant-test-5d1e8b7a40c29f36"
OBJECT_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "count": {"type": "integer"}},
    "required": ["name", "count"],
}


@pytest.fixture
def server() -> Iterator[FakeAnthropicServer]:
    with anthropic_server(api_key=API_KEY) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http_client:
        yield http_client


def endpoint_for(server: FakeAnthropicServer, **options: Any) -> LlmEndpoint:
    options.setdefault("api_key", API_KEY)
    options.setdefault("retry_backoff_base_s", 0.01)
    return LlmEndpoint("anthropic", server.base_url, **options)


def request(prompt: str = "Say hello", *, system_prompt: str | None = "Be brief.", **options: Any) -> ChatRequest:
    return ChatRequest("claude-fake", system_prompt, prompt, **options)


# --- successful calls ------------------------------------------------------------------------------


async def test_streaming_reply_text_and_usage(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("Hello there, friend", usage=(7, 3)))
    deltas: list[str] = []

    result = await chat_completion(client, endpoint_for(server), request(), on_delta=deltas.append)

    assert result.text == "Hello there, friend"
    assert result.value == "Hello there, friend"
    assert deltas == ["Hello ", "there, ", "friend"]
    assert result.usage == TokenUsage(prompt_tokens=7, completion_tokens=3, total_tokens=10)
    assert result.model == "claude-fake"
    assert result.finish_reason == "stop"


async def test_request_body_and_headers(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    endpoint = endpoint_for(server, extra_headers={"X-Team": "blue"})

    await chat_completion(client, endpoint, request("Hi", temperature=0.2))

    sent = server.chat_requests[0]
    body = sent.json
    assert sent.path == "/v1/messages"
    assert body["model"] == "claude-fake"
    assert body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert body["temperature"] == 0.2
    assert body["stream"] is True
    assert "tools" not in body
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.headers["x-team"] == "blue"
    assert "authorization" not in sent.headers


async def test_request_options_sent(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    endpoint = endpoint_for(server, anthropic_version="2024-01-01")

    await chat_completion(client, endpoint, request(system_prompt=None, max_tokens=50))

    sent = server.chat_requests[0]
    assert sent.headers["anthropic-version"] == "2024-01-01"
    assert sent.json["max_tokens"] == 50
    assert "system" not in sent.json
    assert "temperature" not in sent.json


async def test_base_url_with_v1_suffix(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    endpoint = LlmEndpoint("anthropic", server.base_url + "/v1/", api_key=API_KEY)

    result = await chat_completion(client, endpoint, request("ping"))

    assert result.text == "echo: ping"
    assert server.chat_requests[0].path == "/v1/messages"


async def test_non_streaming_reply(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("Whole reply", usage=(4, 2)))
    deltas: list[str] = []

    result = await chat_completion(client, endpoint_for(server), request(), on_delta=deltas.append, stream=False)

    assert result.text == "Whole reply"
    assert deltas == ["Whole reply"]
    assert result.usage == TokenUsage(4, 2, 6)
    assert server.chat_requests[0].json["stream"] is False
    assert server.chat_requests[0].headers["accept"] == "application/json"


@pytest.mark.parametrize("stream", [True, False])
async def test_missing_usage_is_estimated(server: FakeAnthropicServer, client: httpx.AsyncClient, stream: bool) -> None:
    server.script(TextReply("four score and seven", send_usage=False))

    result = await chat_completion(client, endpoint_for(server), request(), stream=stream)

    assert result.usage.estimated is True
    assert result.usage.completion_tokens == 5
    assert result.usage.prompt_tokens > 0


async def test_max_tokens_stop_is_length(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("cut", finish_reason="length"))

    result = await chat_completion(client, endpoint_for(server), request())

    assert result.finish_reason == "length"


async def test_temperature_above_one_rejected(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    with pytest.raises(LlmConfigError) as caught:
        await chat_completion(client, endpoint_for(server), request(temperature=1.5))

    assert "temperature 1.5 is above Anthropic's maximum of 1" in caught.value.message
    assert server.chat_requests == []


# --- JSON output -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_object_schema_uses_forced_tool(
    server: FakeAnthropicServer, client: httpx.AsyncClient, stream: bool
) -> None:
    server.script(json_reply({"name": "ada", "count": 3}))
    deltas: list[str] = []
    schema_request = request(output_schema={**OBJECT_SCHEMA, "title": "Person Count"})

    result = await chat_completion(client, endpoint_for(server), schema_request, on_delta=deltas.append, stream=stream)

    assert result.value == {"name": "ada", "count": 3}
    assert "".join(deltas) == result.text
    body = server.chat_requests[0].json
    assert body["tools"][0]["name"] == "Person_Count"
    assert body["tools"][0]["input_schema"]["required"] == ["name", "count"]
    assert body["tool_choice"] == {"type": "tool", "name": "Person_Count"}
    assert body["system"] == "Be brief."
    assert result.finish_reason == "stop"


async def test_array_schema_uses_system_prompt(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(json_reply(["a", "b"]))
    schema = {"type": "array", "items": {"type": "string"}}

    result = await chat_completion(client, endpoint_for(server), request(output_schema=schema))

    assert result.value == ["a", "b"]
    body = server.chat_requests[0].json
    assert "tools" not in body
    assert body["system"].startswith("Be brief.\n\nReply with only a JSON value")
    assert '"type": "array"' in body["system"]


async def test_schema_violation_then_valid(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(json_reply({"name": "ada"}), json_reply({"name": "ada", "count": 1}))

    result = await chat_completion(client, endpoint_for(server), request(output_schema=OBJECT_SCHEMA))

    assert result.value == {"name": "ada", "count": 1}
    retry = server.chat_requests[1].json
    assert retry["system"] == "Be brief."
    assert [m["role"] for m in retry["messages"]] == ["user", "assistant", "user"]
    assert retry["messages"][1]["content"] == '{"name": "ada"}'
    assert "'count' is a required property" in retry["messages"][2]["content"]


async def test_empty_reply_retry_has_placeholder(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    schema = {"type": "array"}
    server.script(TextReply("", chunks=[]), json_reply([1]))

    result = await chat_completion(client, endpoint_for(server), request(output_schema=schema))

    assert result.value == [1]
    assert server.chat_requests[1].json["messages"][1] == {"role": "assistant", "content": "(empty reply)"}


# --- retries and HTTP errors -------------------------------------------------------------------------


async def test_rate_limit_retried_then_success(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(rate_limited(retry_after="0.05"), TextReply("after wait"))

    started = time.monotonic()
    result = await chat_completion(client, endpoint_for(server), request())

    assert result.text == "after wait"
    assert len(server.chat_requests) == 2
    assert time.monotonic() - started >= 0.05


async def test_overloaded_retried_then_success(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(overloaded(retry_after="0.02"), overloaded(), TextReply("finally"))

    result = await chat_completion(client, endpoint_for(server), request())

    assert result.text == "finally"
    assert len(server.chat_requests) == 3


async def test_overloaded_retries_used_up(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(*[overloaded("0.01")] * 2)

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint_for(server, max_rate_limit_retries=1), request())

    assert caught.value.status == 529
    assert caught.value.retryable is True
    assert "Overloaded" in caught.value.message
    assert "the API is overloaded; retry later" in caught.value.message


async def test_rate_limit_retries_used_up(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(*[rate_limited("0.01")] * 2)

    with pytest.raises(LlmRateLimitError) as caught:
        await chat_completion(client, endpoint_for(server, max_rate_limit_retries=1), request())

    assert caught.value.retry_after_s == pytest.approx(0.01)
    assert "exceeded your rate limit" in caught.value.message


async def test_server_error_retries_used_up(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(*[server_error(500)] * 3)

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint_for(server, max_rate_limit_retries=2), request())

    assert caught.value.status == 500
    assert "Internal server error" in caught.value.message
    assert len(server.chat_requests) == 3


async def test_wrong_api_key_gets_hint(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    wrong_key = "sk-ant-wrong-0a1b2c3d4e5f"

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint_for(server, api_key=wrong_key), request())

    assert caught.value.status == 401
    assert "check the API key" in caught.value.message
    assert wrong_key not in str(caught.value)
    assert "[redacted]" in caught.value.message
    assert caught.value.retryable is False


async def test_unknown_model_path_hint(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    endpoint = LlmEndpoint("anthropic", server.base_url + "/proxy", api_key=API_KEY)

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint, request())

    assert caught.value.status == 404
    assert "the server root, such as https://api.anthropic.com" in caught.value.message


# --- malformed replies -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_html_page_is_protocol_error(
    server: FakeAnthropicServer, client: httpx.AsyncClient, stream: bool
) -> None:
    server.script(html_page())

    with pytest.raises(LlmProtocolError) as caught:
        await chat_completion(client, endpoint_for(server), request(), stream=stream)

    assert "an HTML page titled 'Welcome to nginx!'" in caught.value.message


async def test_error_event_mid_stream(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(StreamError(text_before="Partial "))
    deltas: list[str] = []

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint_for(server), request(), on_delta=deltas.append)

    assert deltas == ["Partial "]
    assert caught.value.status == 529
    assert caught.value.retryable is True
    assert "Overloaded" in caught.value.message
    assert "error inside the stream" in caught.value.message


async def test_invalid_request_error_event_not_retryable(
    server: FakeAnthropicServer, client: httpx.AsyncClient
) -> None:
    server.script(StreamError(error_type="invalid_request_error", message="prompt is too long"))

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint_for(server), request())

    assert caught.value.status == 400
    assert caught.value.retryable is False
    assert "prompt is too long" in caught.value.message


async def test_stream_cut_off_before_message_stop(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    start = 'data: {"type": "message_start", "message": {"model": "claude-fake"}}'
    delta = 'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}'
    server.script(RawStream(["event: message_start", start, "", "event: content_block_delta", delta, ""]))

    with pytest.raises(LlmProtocolError) as caught:
        await chat_completion(client, endpoint_for(server), request())

    assert "ended the stream before the message_stop event" in caught.value.message
    assert caught.value.retryable is True


async def test_event_data_not_json(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(RawStream(["event: message_start", "data: {not json", ""]))

    with pytest.raises(LlmProtocolError) as caught:
        await chat_completion(client, endpoint_for(server), request())

    assert "sent event data that is not JSON" in caught.value.message


async def test_non_streaming_reply_without_content(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(RawReply(200, '{"type": "message", "model": "claude-fake"}'))

    with pytest.raises(LlmProtocolError) as caught:
        await chat_completion(client, endpoint_for(server), request(), stream=False)

    assert "without a 'content' list" in caught.value.message


# --- timeouts and cancellation -------------------------------------------------------------------------


async def test_hanging_server_times_out(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(Hang())

    with pytest.raises(LlmTimeoutError) as caught:
        await chat_completion(client, endpoint_for(server, request_timeout_s=0.3), request())

    assert "sent no data for 0.3 s" in caught.value.message
    assert await asyncio.to_thread(server.aborted.wait, 5)


async def test_stalled_stream_times_out(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("one two three", stall_after_chunks=1))
    deltas: list[str] = []

    with pytest.raises(LlmTimeoutError):
        await chat_completion(client, endpoint_for(server, request_timeout_s=0.3), request(), on_delta=deltas.append)

    assert deltas == ["one "]


async def test_slow_stream_within_timeout(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    # Each gap (0.15 s) stays under the limit, while the whole stream (0.6 s) exceeds it.
    server.script(TextReply("a b c d", chunk_delay_s=0.15))

    result = await chat_completion(client, endpoint_for(server, request_timeout_s=0.4), request())

    assert result.text == "a b c d"


async def test_cancel_closes_stream(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("one two three four", stall_after_chunks=2))
    two_deltas = asyncio.Event()
    deltas: list[str] = []

    def on_delta(text: str) -> None:
        deltas.append(text)
        if len(deltas) == 2:
            two_deltas.set()

    call = asyncio.create_task(chat_completion(client, endpoint_for(server), request(), on_delta=on_delta))
    await asyncio.wait_for(two_deltas.wait(), timeout=5)
    started = time.monotonic()
    call.cancel()

    with pytest.raises(asyncio.CancelledError):
        await call

    assert time.monotonic() - started < 0.5
    assert await asyncio.to_thread(server.aborted.wait, 5)
    assert server.aborted_count == 1


# --- secrets -----------------------------------------------------------------------------------------


async def test_secret_absent_from_errors_and_logs(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    scenarios = [overloaded("0.01"), overloaded("0.01"), html_page(), Hang(), StreamError()]
    errors: list[LlmError] = []
    with anthropic_server(api_key="sk-ant-other-9999") as running:
        endpoint = LlmEndpoint(
            "anthropic",
            running.base_url,
            api_key=API_KEY,
            request_timeout_s=0.3,
            max_rate_limit_retries=1,
            retry_backoff_base_s=0.01,
        )
        with pytest.raises(LlmError) as caught:
            await chat_completion(client, endpoint, request())
        errors.append(caught.value)

        running.require_api_key(None)
        running.script(*scenarios)
        for _ in range(4):
            with pytest.raises(LlmError) as caught:
                await chat_completion(client, endpoint, request())
            errors.append(caught.value)

    assert [type(error) for error in errors] == [
        LlmHttpError,
        LlmHttpError,
        LlmProtocolError,
        LlmTimeoutError,
        LlmHttpError,
    ]
    assert "[redacted]" in errors[0].message
    for error in errors:
        assert API_KEY not in str(error)
        assert API_KEY not in repr(error)
    assert API_KEY not in repr(endpoint)
    assert API_KEY not in caplog.text


# --- model list -----------------------------------------------------------------------------------------


async def test_list_models_follows_pages(client: httpx.AsyncClient) -> None:
    names = [f"claude-{index:04d}" for index in range(1500)]
    with anthropic_server(api_key=API_KEY, models=names) as running:
        models = await list_models(client, endpoint_for(running))

        pages = [r for r in running.requests if r.path == "/v1/models"]

    assert models == names
    assert len(pages) == 2
    assert pages[0].headers["x-api-key"] == API_KEY


async def test_list_models_wrong_key(server: FakeAnthropicServer, client: httpx.AsyncClient) -> None:
    with pytest.raises(LlmHttpError) as caught:
        await list_models(client, endpoint_for(server, api_key="sk-ant-wrong-77777"))

    assert caught.value.status == 401
    assert "check the API key" in caught.value.message


# --- engine ---------------------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="module")
async def test_engine_runs_anthropic_step(make_engine: EngineFactory, store: Store) -> None:
    with anthropic_server(api_key=API_KEY) as running:
        running.script(TextReply("Hello from Claude", usage=(11, 4)))
        environ = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": running.base_url}
        studio, log = await make_engine(services=ExecutorServices(environ=environ))
        step = {
            "id": "ask",
            "type": "llm_call",
            "config": {"provider": "anthropic", "model": "claude-fake", "prompt": "Say hello"},
        }

        run_id = await studio.run_workflow(build_workflow([step]))
        summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    assert summary.result == {"ask": "Hello from Claude"}
    deltas = "".join(str(event.data["text"]) for event in log.of_type(EventType.LLM_TOKEN_DELTA, run_id))
    assert deltas == "Hello from Claude"
    usage = {row["kind"]: row for row in store.usage(run_id)}
    assert usage["llm_prompt_tokens"]["quantity"] == 11
    assert usage["llm_completion_tokens"]["quantity"] == 4
    assert usage["llm_prompt_tokens"]["detail"]["estimated"] is False
    assert usage["llm_prompt_tokens"]["detail"]["base_url"] == running.base_url
