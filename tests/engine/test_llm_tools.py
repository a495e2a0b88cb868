"""Tests of the provider features across the three providers' loopback fakes.

Tool calling, stop sequences, history, schema-checked JSON output and Retry-After, each run against the
OpenAI, Anthropic and Ollama fakes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from studio.engine.executors.llm import ChatRequest, LlmEndpoint, ToolCall, ToolSpec, chat_completion
from studio.engine.executors.llm_errors import LlmConfigError, LlmOutputError
from tests.fakes import anthropic_server as anthropic_fake
from tests.fakes import ollama_server as ollama_fake
from tests.fakes.llm_server_base import FakeLlmServer, RecordedRequest
from tests.fakes.openai_server import TextReply, json_reply, openai_server
from tests.fakes.openai_server import rate_limited as openai_rate_limited
from tests.fakes.openai_server import server_error as openai_server_error

WEATHER = ToolSpec(
    name="get_weather",
    description="Return the weather of a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK = ToolSpec(name="get_time", description="Return the time")
PROVIDERS = ("openai", "anthropic", "ollama")


@dataclass
class Harness:
    """A running fake of one provider and the endpoint that reaches it."""

    provider: str
    server: FakeLlmServer
    endpoint: LlmEndpoint

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return self.server.chat_requests


def _start(provider: str) -> AbstractContextManager[Any]:
    if provider == "anthropic":
        return anthropic_fake.anthropic_server()
    if provider == "ollama":
        return ollama_fake.ollama_server()
    return openai_server()


@pytest.fixture(params=PROVIDERS)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    provider = str(request.param)
    with _start(provider) as server:
        endpoint = LlmEndpoint(provider, server.base_url, retry_backoff_base_s=0.01)  # type: ignore[arg-type]
        yield Harness(provider, server, endpoint)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http_client:
        yield http_client


def tool_request(**options: Any) -> ChatRequest:
    options.setdefault("tools", (WEATHER, CLOCK))
    return ChatRequest("fake-model", "Use the tools.", "Weather in Oslo?", **options)


# --- tool calls -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_tool_call_returned(harness: Harness, client: httpx.AsyncClient, stream: bool) -> None:
    harness.server.script(TextReply("", tool_calls=[("get_weather", '{"city": "Oslo"}')]))

    result = await chat_completion(client, harness.endpoint, tool_request(), stream=stream)

    assert result.tool_calls == (ToolCall(id=result.tool_calls[0].id, name="get_weather", arguments={"city": "Oslo"}),)
    assert result.tool_calls[0].id
    assert result.finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [True, False])
async def test_two_tool_calls_with_text(harness: Harness, client: httpx.AsyncClient, stream: bool) -> None:
    calls = [("get_weather", '{"city": "Bergen"}'), ("get_time", "{}")]
    harness.server.script(TextReply("Checking both.", tool_calls=calls))

    result = await chat_completion(client, harness.endpoint, tool_request(), stream=stream)

    assert result.text == "Checking both."
    assert [(call.name, call.arguments) for call in result.tool_calls] == [
        ("get_weather", {"city": "Bergen"}),
        ("get_time", {}),
    ]
    assert len({call.id for call in result.tool_calls}) == 2


async def test_tools_sent_in_provider_shape(harness: Harness, client: httpx.AsyncClient) -> None:
    harness.server.script(TextReply("no tools needed"))

    await chat_completion(client, harness.endpoint, tool_request())

    body = harness.chat_requests[-1].json
    if harness.provider == "anthropic":
        assert body["tools"][0] == {
            "name": "get_weather",
            "description": "Return the weather of a city",
            "input_schema": WEATHER.parameters,
        }
        assert body["tool_choice"] == {"type": "auto"}
    else:
        assert body["tools"][0] == {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Return the weather of a city",
                "parameters": WEATHER.parameters,
            },
        }
    assert [tool.get("name") or tool["function"]["name"] for tool in body["tools"]] == ["get_weather", "get_time"]


@pytest.mark.parametrize(
    ("choice", "openai_value", "anthropic_value"),
    [
        ("required", "required", {"type": "any"}),
        ("none", "none", {"type": "none"}),
        ("get_time", {"type": "function", "function": {"name": "get_time"}}, {"type": "tool", "name": "get_time"}),
    ],
)
async def test_tool_choice_sent(
    harness: Harness, client: httpx.AsyncClient, choice: str, openai_value: object, anthropic_value: object
) -> None:
    # JSON text, because the Anthropic fake sends the text as the input of a tool that tool_choice forces.
    harness.server.script(TextReply("{}"))

    await chat_completion(client, harness.endpoint, tool_request(tool_choice=choice))

    body = harness.chat_requests[-1].json
    if harness.provider == "openai":
        assert body["tool_choice"] == openai_value
    elif harness.provider == "anthropic":
        assert body["tool_choice"] == anthropic_value
    else:
        # Ollama has no tool_choice: "none" sends no tools, the other choices send them all.
        assert "tool_choice" not in body
        assert ("tools" in body) is (choice != "none")


@pytest.mark.parametrize("stream", [True, False])
async def test_invalid_tool_arguments_fail_clearly(client: httpx.AsyncClient, stream: bool) -> None:
    # Only the OpenAI protocol sends arguments as free text; the others send JSON objects.
    with openai_server() as server:
        server.script(TextReply("", tool_calls=[("get_weather", '{"city": "Os')]))
        endpoint = LlmEndpoint("openai", server.base_url)

        with pytest.raises(LlmOutputError) as caught:
            await chat_completion(client, endpoint, tool_request(), stream=stream)

    assert "tool 'get_weather'" in caught.value.message
    assert "not valid JSON" in caught.value.message
    assert caught.value.retryable


# --- stop sequences and history -------------------------------------------------------------------------


async def test_stop_sequences_sent(harness: Harness, client: httpx.AsyncClient) -> None:
    harness.server.script(TextReply("one two"))

    await chat_completion(client, harness.endpoint, ChatRequest("fake-model", None, "Count", stop=("three", "\n\n")))

    body = harness.chat_requests[-1].json
    if harness.provider == "anthropic":
        assert body["stop_sequences"] == ["three", "\n\n"]
    elif harness.provider == "ollama":
        assert body["options"]["stop"] == ["three", "\n\n"]
    else:
        assert body["stop"] == ["three", "\n\n"]


async def test_history_sent_as_turns(harness: Harness, client: httpx.AsyncClient) -> None:
    history = (
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": "What is my name?"},
    )
    harness.server.script(TextReply("Ada"))

    await chat_completion(client, harness.endpoint, ChatRequest("fake-model", "Be brief.", "", history=history))

    body = harness.chat_requests[-1].json
    turns = [(m["role"], m["content"]) for m in body["messages"] if m["role"] != "system"]
    assert turns == [(m["role"], m["content"]) for m in history]


async def test_retry_after_respected(harness: Harness, client: httpx.AsyncClient) -> None:
    if harness.provider == "anthropic":
        rate_limit_reply = anthropic_fake.rate_limited(retry_after="0.4")
    else:
        rate_limit_reply = openai_rate_limited(retry_after="0.4")
    harness.server.script(rate_limit_reply, TextReply("after the wait"))

    started = time.monotonic()
    result = await chat_completion(client, harness.endpoint, ChatRequest("fake-model", None, "Hi"))
    elapsed = time.monotonic() - started

    assert result.text == "after the wait"
    assert len(harness.chat_requests) == 2
    assert elapsed >= 0.4


@pytest.mark.parametrize("status", [500, 503])
async def test_server_error_retry_after_respected(harness: Harness, client: httpx.AsyncClient, status: int) -> None:
    if harness.provider == "anthropic":
        failure = anthropic_fake.server_error(status, retry_after="0.3")
    else:
        failure = openai_server_error(status, retry_after="0.3")
    harness.server.script(failure, TextReply("recovered"))

    started = time.monotonic()
    result = await chat_completion(client, harness.endpoint, ChatRequest("fake-model", None, "Hi"))
    elapsed = time.monotonic() - started

    assert result.text == "recovered"
    assert len(harness.chat_requests) == 2
    assert elapsed >= 0.3


# --- JSON output ----------------------------------------------------------------------------------------

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


@pytest.mark.parametrize("stream", [True, False])
async def test_schema_mismatch_then_valid(harness: Harness, client: httpx.AsyncClient, stream: bool) -> None:
    harness.server.script(json_reply({"name": "Ada"}), json_reply({"name": "Ada", "age": 36}))

    result = await chat_completion(
        client, harness.endpoint, ChatRequest("fake-model", None, "Who?", output_schema=PERSON), stream=stream
    )

    assert result.value == {"name": "Ada", "age": 36}
    assert len(harness.chat_requests) == 2
    corrective = harness.chat_requests[-1].json["messages"][-1]["content"]
    assert "'age' is a required property" in corrective


async def test_schema_mismatch_twice_fails(harness: Harness, client: httpx.AsyncClient) -> None:
    harness.server.script(json_reply({"name": "Ada"}), json_reply({"name": "Ada", "age": -1}))

    with pytest.raises(LlmOutputError) as caught:
        await chat_completion(client, harness.endpoint, ChatRequest("fake-model", None, "Who?", output_schema=PERSON))

    assert len(harness.chat_requests) == 2
    assert "does not match the output schema at $.age" in caught.value.message
    assert "-1 is less than the minimum of 0" in caught.value.message
    assert caught.value.retryable


# --- request checks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"tools": (WEATHER,), "output_schema": {"type": "object"}}, "either tools or output_schema"),
        ({"tools": (WEATHER, WEATHER)}, "get_weather appear more than once"),
        ({"tools": (WEATHER,), "tool_choice": "get_time"}, "nor the name of a tool (get_weather)"),
        ({"tool_choice": "auto"}, "the request has no tools"),
        ({"stop": ("a", "b", "c", "d", "e")}, "at most 4 stop sequences"),
        ({"stop": ("",)}, "stop sequences must be non-empty strings"),
        ({"history": ({"role": "system", "content": "x"},)}, "history[0] must be"),
    ],
)
def test_request_rejects_invalid_tools(options: dict[str, Any], expected: str) -> None:
    with pytest.raises(LlmConfigError) as caught:
        ChatRequest("fake-model", None, "Hi", **options)

    assert expected in caught.value.message


@pytest.mark.parametrize(
    ("name", "parameters", "expected"),
    [
        ("get weather", {"type": "object"}, "invalid tool name 'get weather'"),
        ("x" * 65, {"type": "object"}, "use 1 to 64 letters"),
        ("lookup", {"type": "array"}, 'must be a JSON Schema with "type": "object"'),
    ],
)
def test_tool_spec_rejects_invalid(name: str, parameters: dict[str, Any], expected: str) -> None:
    with pytest.raises(LlmConfigError) as caught:
        ToolSpec(name=name, parameters=parameters)

    assert expected in caught.value.message
