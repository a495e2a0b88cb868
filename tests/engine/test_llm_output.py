"""Tests of JSON Schema output: response_format, validation, the corrective retry and LlmOutputError."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import MappingProxyType
from typing import Any

import httpx
import pytest

from studio.engine.executors.llm import (
    ChatRequest,
    LlmConfigError,
    LlmEndpoint,
    LlmOutputError,
    TokenUsage,
    chat_completion,
)
from tests.fakes.openai_server import FakeOpenAIServer, TextReply, json_reply, openai_server

PERSON_SCHEMA: dict[str, Any] = {
    "title": "Person record",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with openai_server() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http_client:
        yield http_client


def person_request(**options: Any) -> ChatRequest:
    return ChatRequest("fake-model", "Extract the person.", "Ada, 36", output_schema=PERSON_SCHEMA, **options)


async def test_valid_json_reply_parsed(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(json_reply({"name": "Ada", "age": 36}))

    result = await chat_completion(client, LlmEndpoint("openai", server.base_url), person_request())

    assert result.value == {"name": "Ada", "age": 36}
    assert result.text == '{"name": "Ada", "age": 36}'
    assert len(server.chat_requests) == 1


async def test_response_format_sent(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(json_reply({"name": "Ada", "age": 36}))

    await chat_completion(client, LlmEndpoint("openai", server.base_url), person_request())

    response_format = server.chat_requests[0].json["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Person_record"
    assert response_format["json_schema"]["schema"] == PERSON_SCHEMA


async def test_read_only_schema_mapping_sent(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    schema = MappingProxyType({"type": "array", "items": MappingProxyType({"type": "number"})})
    server.script(json_reply([1, 2.5]))

    result = await chat_completion(
        client, LlmEndpoint("openai", server.base_url), ChatRequest("fake-model", None, "nums", output_schema=schema)
    )

    assert result.value == [1, 2.5]
    assert server.chat_requests[0].json["response_format"]["json_schema"] == {
        "name": "output",
        "schema": {"type": "array", "items": {"type": "number"}},
    }


async def test_fenced_json_accepted(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply('```json\n{"name": "Ada", "age": 36}\n```'))

    result = await chat_completion(client, LlmEndpoint("openai", server.base_url), person_request())

    assert result.value == {"name": "Ada", "age": 36}


@pytest.mark.parametrize("stream", [True, False])
async def test_invalid_json_then_valid(server: FakeOpenAIServer, client: httpx.AsyncClient, stream: bool) -> None:
    server.script(
        TextReply("Sure! The person is Ada.", usage=(10, 6)),
        json_reply({"name": "Ada", "age": 36}, usage=(30, 8)),
    )
    deltas: list[str] = []

    result = await chat_completion(
        client, LlmEndpoint("openai", server.base_url), person_request(), on_delta=deltas.append, stream=stream
    )

    assert result.value == {"name": "Ada", "age": 36}
    assert result.usage == TokenUsage(40, 14, 54)
    assert "".join(deltas) == 'Sure! The person is Ada.{"name": "Ada", "age": 36}'
    assert len(server.chat_requests) == 2
    retry_messages = server.chat_requests[1].json["messages"]
    assert retry_messages[:2] == server.chat_requests[0].json["messages"]
    assert retry_messages[2] == {"role": "assistant", "content": "Sure! The person is Ada."}
    assert retry_messages[3]["role"] == "user"
    assert "not valid JSON" in retry_messages[3]["content"]
    assert '"required": ["name", "age"]' in retry_messages[3]["content"]


async def test_schema_violation_then_valid(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(json_reply({"name": "Ada", "age": "thirty-six"}), json_reply({"name": "Ada", "age": 36}))

    result = await chat_completion(client, LlmEndpoint("openai", server.base_url), person_request())

    assert result.value == {"name": "Ada", "age": 36}
    correction = server.chat_requests[1].json["messages"][3]["content"]
    assert "at $.age: 'thirty-six' is not of type 'integer'" in correction


async def test_schema_violation_twice_raises(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(json_reply({"name": "Ada"}), json_reply({"name": "Ada", "age": -1}))

    with pytest.raises(LlmOutputError) as caught:
        await chat_completion(client, LlmEndpoint("openai", server.base_url), person_request())

    error = caught.value
    assert len(server.chat_requests) == 2
    assert "does not match the output schema at $.age" in error.message
    assert "-1 is less than the minimum of 0" in error.message
    assert '"age": -1' in error.message
    assert error.retryable is True


async def test_empty_reply_twice_raises(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply(""), TextReply("  "))

    with pytest.raises(LlmOutputError) as caught:
        await chat_completion(client, LlmEndpoint("openai", server.base_url), person_request())

    assert "the reply is empty" in caught.value.message


async def test_cut_off_reply_names_max_tokens(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply('{"name": "A', finish_reason="length"), TextReply('{"name": "Ad', finish_reason="length"))

    with pytest.raises(LlmOutputError) as caught:
        await chat_completion(client, LlmEndpoint("openai", server.base_url), person_request(max_tokens=5))

    assert "not valid JSON" in caught.value.message
    assert "raise max_tokens" in caught.value.message


async def test_nested_path_in_violation(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}}}
    server.script(json_reply({"items": ["a", 2]}), json_reply({"items": ["a", 3]}))
    request = ChatRequest("fake-model", None, "list", output_schema=schema)

    with pytest.raises(LlmOutputError) as caught:
        await chat_completion(client, LlmEndpoint("openai", server.base_url), request)

    assert "at $.items[1]: 3 is not of type 'string'" in caught.value.message


async def test_invalid_schema_rejected_before_sending(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    request = ChatRequest("fake-model", None, "x", output_schema={"type": "objekt"})

    with pytest.raises(LlmConfigError) as caught:
        await chat_completion(client, LlmEndpoint("openai", server.base_url), request)

    assert "output_schema is not a valid JSON Schema" in caught.value.message
    assert "objekt" in caught.value.message
    assert server.chat_requests == []


async def test_text_request_skips_parsing(server: FakeOpenAIServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply('{"looks": "like json"}'))

    result = await chat_completion(client, LlmEndpoint("openai", server.base_url), ChatRequest("fake-model", None, "x"))

    assert result.value == '{"looks": "like json"}'
