"""Tests of the LLM client's successful calls against the loopback OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from studio.engine.executors.llm import ChatRequest, LlmEndpoint, TokenUsage, chat_completion
from tests.fakes.openai_server import FakeOpenAIServer, RawReply, TextReply, openai_server


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with openai_server() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http_client:
        yield http_client


def endpoint_for(server: FakeOpenAIServer, **options: object) -> LlmEndpoint:
    return LlmEndpoint("openai", server.base_url, **options)  # type: ignore[arg-type]


def request(prompt: str = "Say hello", *, system_prompt: str | None = "Be brief.", **options: object) -> ChatRequest:
    return ChatRequest("fake-model", system_prompt, prompt, **options)  # type: ignore[arg-type]


async def test_streaming_reply_text_and_usage(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("Hello there, friend", usage=(7, 3)))

    result = await chat_completion(client, endpoint_for(server), request())

    assert result.text == "Hello there, friend"
    assert result.value == "Hello there, friend"
    assert result.usage == TokenUsage(prompt_tokens=7, completion_tokens=3, total_tokens=10)
    assert result.usage.estimated is False
    assert result.model == "fake-model"
    assert result.finish_reason == "stop"


async def test_streaming_request_body(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    endpoint = endpoint_for(server, api_key="sk-body-test", extra_headers={"X-Team": "blue"})

    await chat_completion(client, endpoint, request("Hi", temperature=0.2, max_tokens=50))

    sent = server.chat_requests[0]
    body = sent.json
    assert sent.path == "/v1/chat/completions"
    assert body["model"] == "fake-model"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 50
    assert "response_format" not in body
    assert sent.headers["authorization"] == "Bearer sk-body-test"
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.headers["x-team"] == "blue"


async def test_request_without_system_prompt(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    await chat_completion(client, endpoint_for(server), request("Only user", system_prompt=None))

    body = server.chat_requests[0].json
    assert body["messages"] == [{"role": "user", "content": "Only user"}]
    assert "temperature" not in body
    assert "max_tokens" not in body
    assert "authorization" not in server.chat_requests[0].headers


async def test_deltas_arrive_before_completion(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    # The stream stalls after three chunks, so these deltas can only have come while the call was running.
    server.script(TextReply("one two three four five", stall_after_chunks=3))
    deltas: list[str] = []
    three_deltas = asyncio.Event()

    def on_delta(text: str) -> None:
        deltas.append(text)
        if len(deltas) == 3:
            three_deltas.set()

    call = asyncio.create_task(chat_completion(client, endpoint_for(server), request(), on_delta=on_delta))
    await asyncio.wait_for(three_deltas.wait(), timeout=5)

    assert not call.done()
    assert deltas == ["one ", "two ", "three "]
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_slow_stream_deltas_spread_out(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("a b c d e", chunk_delay_s=0.05))
    arrivals: list[float] = []
    deltas: list[str] = []

    def on_delta(text: str) -> None:
        arrivals.append(time.monotonic())
        deltas.append(text)

    result = await chat_completion(client, endpoint_for(server), request(), on_delta=on_delta)
    finished = time.monotonic()

    assert deltas == ["a ", "b ", "c ", "d ", "e"]
    assert "".join(deltas) == result.text
    # With 0.05 s between chunks, the first delta comes at least 0.15 s before the call returns.
    assert finished - arrivals[0] >= 0.15


async def test_non_streaming_reply(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("Plain reply", usage=(4, 2), finish_reason="length"))
    deltas: list[str] = []

    result = await chat_completion(client, endpoint_for(server), request(), on_delta=deltas.append, stream=False)

    body = server.chat_requests[0].json
    assert body["stream"] is False
    assert "stream_options" not in body
    assert server.chat_requests[0].headers["accept"] == "application/json"
    assert result.text == "Plain reply"
    assert result.usage == TokenUsage(4, 2, 6)
    assert result.finish_reason == "length"
    assert deltas == ["Plain reply"]


@pytest.mark.parametrize("stream", [True, False])
async def test_missing_usage_is_estimated(server: FakeOpenAIServer, client: httpx.AsyncClient, stream: bool) -> None:
    server.script(TextReply("x" * 40, send_usage=False))

    result = await chat_completion(client, endpoint_for(server), request("y" * 20), stream=stream)

    assert result.usage.estimated is True
    assert result.usage.completion_tokens == 10
    # 20 prompt characters plus "Be brief." (9 characters), over 4 per token, plus 4 tokens per message.
    assert result.usage.prompt_tokens == 8 + 2 * 4
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


async def test_tool_call_deltas_joined(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("after tools", tool_calls=[("lookup", '{"city": "Oslo"}')]))

    result = await chat_completion(client, endpoint_for(server), request())

    assert result.text == "after tools"
    assert [(call.name, call.arguments) for call in result.tool_calls] == [("lookup", {"city": "Oslo"})]


async def test_tool_call_only_reply_non_streaming(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("", tool_calls=[("lookup", "{}")], finish_reason="tool_calls"))

    result = await chat_completion(client, endpoint_for(server), request(), stream=False)

    assert result.text == ""
    assert result.finish_reason == "tool_calls"
    assert [(call.id, call.name, call.arguments) for call in result.tool_calls] == [("call_0", "lookup", {})]


async def test_server_model_name_is_reported(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("hi", model="fake-model-2026-01-01"))

    result = await chat_completion(client, endpoint_for(server), request())

    assert result.model == "fake-model-2026-01-01"


async def test_stream_ignored_by_server(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    # Some servers reply to stream=true with one JSON object; the client reads it as a normal reply.
    completion = {
        "object": "chat.completion",
        "model": "fake-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    server.script(RawReply(200, json.dumps(completion)))
    deltas: list[str] = []

    result = await chat_completion(client, endpoint_for(server), request(), on_delta=deltas.append)

    assert result.text == "whole"
    assert deltas == ["whole"]
    assert result.usage == TokenUsage(1, 1, 2)


async def test_base_url_trailing_slash(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    endpoint = LlmEndpoint("openai", server.base_url + "/")

    await chat_completion(client, endpoint, request())

    assert server.chat_requests[0].path == "/v1/chat/completions"


async def test_fake_server_lists_models(client: httpx.AsyncClient) -> None:
    with openai_server(models=("alpha", "beta")) as running:
        response = await client.get(running.base_url + "/models")

    assert response.status_code == 200
    assert [model["id"] for model in response.json()["data"]] == ["alpha", "beta"]


async def test_fake_server_default_echoes(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    result = await chat_completion(client, endpoint_for(server), request("ping"))

    assert result.text == "echo: ping"
