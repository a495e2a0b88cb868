"""Tests of the Ollama native provider, model lists, provider settings and an Ollama step run by the engine."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from studio.engine import EventType, ExecutorServices
from studio.engine.errors import StepError
from studio.engine.executors.llm import (
    ChatRequest,
    LlmConfigError,
    LlmEndpoint,
    LlmError,
    LlmHttpError,
    LlmProtocolError,
    LlmTimeoutError,
    TokenUsage,
    chat_completion,
    endpoint_from_env_for,
    list_models,
    parse_provider,
)
from studio.store import Store
from tests.conftest import EngineFactory, build_workflow
from tests.fakes.anthropic_server import anthropic_server
from tests.fakes.ollama_server import FakeOllamaServer, StreamError, model_not_found, ollama_server
from tests.fakes.openai_server import (
    Hang,
    RawReply,
    RawStream,
    TextReply,
    html_page,
    json_reply,
    openai_server,
    rate_limited,
    server_error,
)

PROXY_KEY = "sk-proxy-4c8e1f0b2a7d9e35"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture
def server() -> Iterator[FakeOllamaServer]:
    with ollama_server() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http_client:
        yield http_client


def endpoint_for(server: FakeOllamaServer, **options: Any) -> LlmEndpoint:
    options.setdefault("retry_backoff_base_s", 0.01)
    return LlmEndpoint("ollama", server.base_url, **options)


def request(prompt: str = "Say hello", *, system_prompt: str | None = "Be brief.", **options: Any) -> ChatRequest:
    return ChatRequest("fake-model", system_prompt, prompt, **options)


# --- successful calls ------------------------------------------------------------------------------


async def test_streaming_reply_text_and_usage(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("Hello there, friend", usage=(9, 3)))
    deltas: list[str] = []

    result = await chat_completion(client, endpoint_for(server), request(), on_delta=deltas.append)

    assert result.text == "Hello there, friend"
    assert deltas == ["Hello ", "there, ", "friend"]
    assert result.usage == TokenUsage(prompt_tokens=9, completion_tokens=3, total_tokens=12)
    assert result.model == "fake-model"
    assert result.finish_reason == "stop"


async def test_request_body_and_headers(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    await chat_completion(client, endpoint_for(server), request("Hi", temperature=0.3, max_tokens=40))

    sent = server.chat_requests[0]
    body = sent.json
    assert sent.path == "/api/chat"
    assert body["model"] == "fake-model"
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert body["stream"] is True
    assert body["options"] == {"temperature": 0.3, "num_predict": 40}
    assert "format" not in body
    assert sent.headers["accept"] == "application/x-ndjson"
    assert "authorization" not in sent.headers


async def test_base_url_with_api_suffix(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    for suffix in ("/", "/api", "/v1"):
        endpoint = LlmEndpoint("ollama", server.base_url + suffix)

        result = await chat_completion(client, endpoint, request("ping", system_prompt=None))

        assert result.text == "echo: ping"
    assert [r.path for r in server.chat_requests] == ["/api/chat"] * 3


async def test_non_streaming_reply(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("Whole reply", usage=(5, 2), finish_reason="length"))
    deltas: list[str] = []

    result = await chat_completion(client, endpoint_for(server), request(), on_delta=deltas.append, stream=False)

    assert result.text == "Whole reply"
    assert deltas == ["Whole reply"]
    assert result.usage == TokenUsage(5, 2, 7)
    assert result.finish_reason == "length"
    assert server.chat_requests[0].json["stream"] is False


@pytest.mark.parametrize("stream", [True, False])
async def test_missing_usage_is_estimated(server: FakeOllamaServer, client: httpx.AsyncClient, stream: bool) -> None:
    server.script(TextReply("four score and seven", send_usage=False))

    result = await chat_completion(client, endpoint_for(server), request(), stream=stream)

    assert result.usage.estimated is True
    assert result.usage.completion_tokens == 5


@pytest.mark.parametrize("stream", [True, False])
async def test_schema_sent_as_format(server: FakeOllamaServer, client: httpx.AsyncClient, stream: bool) -> None:
    server.script(json_reply({"city": "Oslo"}))

    result = await chat_completion(client, endpoint_for(server), request(output_schema=SCHEMA), stream=stream)

    assert result.value == {"city": "Oslo"}
    assert server.chat_requests[0].json["format"] == SCHEMA


async def test_invalid_json_then_valid(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("not json"), json_reply({"city": "Rome"}))

    result = await chat_completion(client, endpoint_for(server), request(output_schema=SCHEMA))

    assert result.value == {"city": "Rome"}
    retry = server.chat_requests[1].json
    assert [m["role"] for m in retry["messages"]] == ["system", "user", "assistant", "user"]
    assert retry["format"] == SCHEMA


# --- failures ------------------------------------------------------------------------------------------


async def test_rate_limit_retried_then_success(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    server.script(rate_limited(retry_after="0.05"), TextReply("after wait"))

    result = await chat_completion(client, endpoint_for(server), request())

    assert result.text == "after wait"
    assert len(server.chat_requests) == 2


async def test_server_error_retries_used_up(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    server.script(*[server_error(500)] * 2)

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint_for(server, max_rate_limit_retries=1), request())

    assert caught.value.status == 500
    assert len(server.chat_requests) == 2


async def test_model_not_found_hint(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    server.script(model_not_found("llama9"))

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint_for(server), request())

    assert caught.value.status == 404
    assert 'model "llama9" not found' in caught.value.message
    assert "ollama pull <model>" in caught.value.message
    assert len(server.chat_requests) == 1


async def test_proxy_rejects_wrong_key(client: httpx.AsyncClient) -> None:
    with ollama_server(api_key=PROXY_KEY) as running:
        with pytest.raises(LlmHttpError) as caught:
            await chat_completion(client, endpoint_for(running, api_key="sk-wrong-1234567"), request())
        accepted = await chat_completion(client, endpoint_for(running, api_key=PROXY_KEY), request("hi"))

        sent = running.chat_requests[-1]

    assert caught.value.status == 401
    assert "check the API key" in caught.value.message
    assert "sk-wrong-1234567" not in str(caught.value)
    assert accepted.text == "echo: hi"
    assert sent.headers["authorization"] == f"Bearer {PROXY_KEY}"


@pytest.mark.parametrize("stream", [True, False])
async def test_html_page_is_protocol_error(server: FakeOllamaServer, client: httpx.AsyncClient, stream: bool) -> None:
    server.script(html_page())

    with pytest.raises(LlmProtocolError) as caught:
        await chat_completion(client, endpoint_for(server), request(), stream=stream)

    assert "an HTML page titled 'Welcome to nginx!'" in caught.value.message
    assert "Ollama server root" in caught.value.message


async def test_error_line_mid_stream(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    server.script(StreamError(text_before="Partial "))
    deltas: list[str] = []

    with pytest.raises(LlmHttpError) as caught:
        await chat_completion(client, endpoint_for(server), request(), on_delta=deltas.append)

    assert deltas == ["Partial "]
    assert "model runner has unexpectedly stopped" in caught.value.message
    assert caught.value.retryable is True


async def test_stream_line_not_json(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    server.script(RawStream(['{"message": {"content": "Hi"}, "done": false}', "<html>oops</html>"]))

    with pytest.raises(LlmProtocolError) as caught:
        await chat_completion(client, endpoint_for(server), request())

    assert "sent a stream line that is not JSON" in caught.value.message


async def test_stream_cut_off_before_done(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    server.script(RawStream(['{"message": {"content": "Hi"}, "done": false}', ""]))

    with pytest.raises(LlmProtocolError) as caught:
        await chat_completion(client, endpoint_for(server), request())

    assert "ended the stream before the object with 'done: true'" in caught.value.message
    assert caught.value.retryable is True


async def test_non_streaming_reply_not_done(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    server.script(RawReply(200, '{"message": {"content": "Hi"}, "done": false}'))

    with pytest.raises(LlmProtocolError) as caught:
        await chat_completion(client, endpoint_for(server), request(), stream=False)

    assert "without 'done: true'" in caught.value.message


async def test_hanging_server_times_out(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    server.script(Hang())

    with pytest.raises(LlmTimeoutError) as caught:
        await chat_completion(client, endpoint_for(server, request_timeout_s=0.3), request())

    assert "sent no data for 0.3 s" in caught.value.message


async def test_slow_stream_within_timeout(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    # Each gap (0.15 s) stays under the limit, while the whole stream (0.6 s) exceeds it.
    server.script(TextReply("a b c d", chunk_delay_s=0.15))

    result = await chat_completion(client, endpoint_for(server, request_timeout_s=0.4), request())

    assert result.text == "a b c d"


async def test_stalled_stream_times_out(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
    server.script(TextReply("one two three", stall_after_chunks=1))

    with pytest.raises(LlmTimeoutError):
        await chat_completion(client, endpoint_for(server, request_timeout_s=0.3), request())


async def test_cancel_closes_stream(server: FakeOllamaServer, client: httpx.AsyncClient) -> None:
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


async def test_secret_absent_from_errors_and_logs(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[LlmError] = []
    with ollama_server(api_key="sk-proxy-other-0000") as running:
        endpoint = endpoint_for(running, api_key=PROXY_KEY, request_timeout_s=0.3, max_rate_limit_retries=0)
        with pytest.raises(LlmError) as caught:
            await chat_completion(client, endpoint, request())
        errors.append(caught.value)

        running.require_api_key(None)
        running.script(server_error(500), html_page(), Hang(), StreamError())
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
        assert PROXY_KEY not in str(error)
    assert PROXY_KEY not in caplog.text


# --- model lists -----------------------------------------------------------------------------------------


async def test_list_models_ollama(client: httpx.AsyncClient) -> None:
    with ollama_server(models=("llama3.2:latest", "qwen3:4b")) as running:
        models = await list_models(client, endpoint_for(running))

        paths = [r.path for r in running.requests]

    assert models == ["llama3.2:latest", "qwen3:4b"]
    assert paths == ["/api/tags"]


async def test_list_models_openai(client: httpx.AsyncClient) -> None:
    with openai_server(api_key=PROXY_KEY, models=("gpt-fake", "gpt-fake-mini")) as running:
        models = await list_models(client, LlmEndpoint("openai", running.base_url, api_key=PROXY_KEY))

        sent = running.requests[-1]

    assert models == ["gpt-fake", "gpt-fake-mini"]
    assert sent.path == "/v1/models"
    assert sent.headers["authorization"] == f"Bearer {PROXY_KEY}"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (html_page(), "did not send a JSON object (an HTML page titled 'Welcome to nginx!', not an API reply)"),
        (RawReply(200, '{"tags": []}'), "sent a model list without a 'models' list"),
    ],
)
async def test_list_models_bad_reply(
    server: FakeOllamaServer, client: httpx.AsyncClient, reply: RawReply, expected: str
) -> None:
    server.tags_reply = reply

    with pytest.raises(LlmProtocolError) as caught:
        await list_models(client, endpoint_for(server))

    assert expected in caught.value.message


# --- provider settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "env", "base_url", "api_key"),
    [
        ("anthropic", {"ANTHROPIC_API_KEY": "sk-ant-x1"}, "https://api.anthropic.com", "sk-ant-x1"),
        ("anthropic", {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9/"}, "http://127.0.0.1:9/", None),
        ("ollama", {"OLLAMA_HOST": "0.0.0.0"}, "http://127.0.0.1:11434", None),
        ("ollama", {"OLLAMA_HOST": "gpu-box:8080", "OLLAMA_BASE_URL": "http://h:1"}, "http://h:1", None),
        ("openai", {"OPENAI_API_KEY": "sk-o1"}, "https://api.openai.com/v1", "sk-o1"),
    ],
)
def test_endpoint_from_env_for(provider: str, env: dict[str, str], base_url: str, api_key: str | None) -> None:
    endpoint = endpoint_from_env_for(parse_provider(provider), env)

    assert endpoint is not None
    assert endpoint.provider == provider
    assert endpoint.base_url == base_url
    assert endpoint.api_key == api_key


def test_endpoint_from_env_for_unset() -> None:
    other = {"OPENAI_API_KEY": "sk-o1"}

    assert endpoint_from_env_for("anthropic", other) is None
    assert endpoint_from_env_for("ollama", other) is None


def test_parse_provider() -> None:
    assert parse_provider(None) == "openai"
    assert parse_provider("ollama") == "ollama"
    with pytest.raises(LlmConfigError) as caught:
        parse_provider("gemini")
    assert "unsupported LLM provider 'gemini'; use one of openai, anthropic, ollama" in caught.value.message


@pytest.mark.parametrize(
    ("provider", "variable"),
    [("anthropic", "ANTHROPIC_API_KEY"), ("ollama", "OLLAMA_HOST"), ("openai", "OPENAI_BASE_URL")],
)
def test_step_endpoint_missing_names_variable(provider: str, variable: str) -> None:
    services = ExecutorServices(environ={})

    with pytest.raises(StepError) as caught:
        services.llm_endpoint({"provider": provider})

    assert caught.value.kind == "invalid_input"
    assert f"no LLM endpoint is configured for provider '{provider}'" in str(caught.value)
    assert variable in str(caught.value)


def test_step_provider_selects_endpoint() -> None:
    environ = {"OPENAI_API_KEY": "sk-o1", "ANTHROPIC_API_KEY": "sk-ant-x1", "OLLAMA_HOST": "127.0.0.1:5"}
    services = ExecutorServices(environ=environ)

    assert services.llm_endpoint({}).provider == "openai"
    assert services.llm_endpoint({"provider": "anthropic"}).api_key == "sk-ant-x1"
    assert services.llm_endpoint({"provider": "ollama"}).base_url == "http://127.0.0.1:5"


def test_step_unknown_provider_rejected() -> None:
    with pytest.raises(StepError) as caught:
        ExecutorServices(environ={}).llm_endpoint({"provider": "gemini"})

    assert "unsupported LLM provider 'gemini'" in str(caught.value)
    assert "fix the step's provider field" in str(caught.value)


def test_step_connection_uses_step_provider(store: Store) -> None:
    connection_id = store.add_connection(
        name="Local Ollama", kind="none", provider="ollama", base_url="http://127.0.0.1:11434"
    )
    services = ExecutorServices(store, environ={})

    endpoint = services.llm_endpoint({"provider": "ollama", "connection_id": connection_id})

    assert endpoint.provider == "ollama"
    assert endpoint.chat_url == "http://127.0.0.1:11434/api/chat"


def test_step_connection_provider_mismatch(store: Store) -> None:
    connection_id = store.add_connection(
        name="Local Ollama", kind="none", provider="ollama", base_url="http://127.0.0.1:11434"
    )
    services = ExecutorServices(store, environ={})

    with pytest.raises(StepError) as caught:
        services.llm_endpoint({"provider": "anthropic", "connection_id": connection_id})

    assert caught.value.kind == "invalid_input"
    assert "connection 'Local Ollama' is for provider 'ollama' but the step uses provider 'anthropic'" in str(
        caught.value
    )


# --- engine ---------------------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="module")
async def test_engine_runs_ollama_step(make_engine: EngineFactory, store: Store) -> None:
    with ollama_server() as running:
        running.script(json_reply({"city": "Oslo"}, usage=(21, 6)))
        studio, log = await make_engine(services=ExecutorServices(environ={"OLLAMA_BASE_URL": running.base_url}))
        config = {"provider": "ollama", "model": "fake-model", "prompt": "Pick a city", "output_schema": SCHEMA}

        run_id = await studio.run_workflow(build_workflow([{"id": "pick", "type": "llm_call", "config": config}]))
        summary = await studio.wait(run_id)

        sent = running.chat_requests[-1].json

    assert summary.status == "completed", summary.error
    assert summary.result == {"pick": {"city": "Oslo"}}
    assert sent["format"] == SCHEMA
    deltas = "".join(str(event.data["text"]) for event in log.of_type(EventType.LLM_TOKEN_DELTA, run_id))
    assert deltas == '{"city": "Oslo"}'
    usage = {row["kind"]: row for row in store.usage(run_id)}
    assert usage["llm_prompt_tokens"]["quantity"] == 21
    assert usage["llm_completion_tokens"]["quantity"] == 6
    assert usage["llm_completion_tokens"]["detail"]["estimated"] is False


@pytest.mark.asyncio(loop_scope="module")
async def test_engine_anthropic_without_key_fails(make_engine: EngineFactory) -> None:
    with anthropic_server() as running:
        studio, _ = await make_engine(services=ExecutorServices(environ={"OLLAMA_HOST": "127.0.0.1:1"}))
        config = {"provider": "anthropic", "model": "claude-fake", "prompt": "Hi"}

        run_id = await studio.run_workflow(build_workflow([{"id": "ask", "type": "llm_call", "config": config}]))
        summary = await studio.wait(run_id)

        requests = list(running.requests)

    assert summary.status == "failed"
    assert isinstance(summary.error, dict)
    assert "set ANTHROPIC_API_KEY" in str(summary.error["message"])
    assert requests == []
