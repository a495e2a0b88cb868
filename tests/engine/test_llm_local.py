"""Tests of the local model provider: a real llama_cpp.server process with the Gemma 3 270M model.

The model comes from tools/install-local-model.sh (run by tools/bootstrap-test-deps.sh). Its replies
are poor, so these tests check the mechanics (streaming, token counts, stops, process lifetime), not the text.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from studio.engine import ExecutorServices
from studio.engine.events import EventType
from studio.engine.executors.llm import ChatRequest, LlmEndpoint, chat_completion
from studio.engine.executors.llm_default import resolve_step_llm
from studio.engine.executors.llm_errors import LlmConfigError
from studio.llm_local import LOCAL_MODEL_NAME, LocalModelManager, LocalModelNotInstalledError, find_install
from studio.store import Store
from tests.conftest import EngineFactory, build_workflow

INSTALL_HINT = "run tools/bootstrap-test-deps.sh (or tools/install-local-model.sh) to install the local model"
# Deterministic sampling, so a prompt gives the same reply on every run.
GREEDY = 0.0

# The async tests share the module's event loop, as the engine fixtures of tests.conftest need.
module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def manager() -> Iterator[LocalModelManager]:
    try:
        find_install()
    except LocalModelNotInstalledError as error:
        pytest.fail(f"{error}; {INSTALL_HINT}")
    started = LocalModelManager()
    yield started
    started.stop_now()


@pytest_asyncio.fixture(loop_scope="module")
async def endpoint(manager: LocalModelManager) -> LlmEndpoint:
    return LlmEndpoint("openai", await manager.base_url(), request_timeout_s=120.0)


@pytest_asyncio.fixture(loop_scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http_client:
        yield http_client


def count_request(**options: object) -> ChatRequest:
    return ChatRequest(LOCAL_MODEL_NAME, None, "Count from one to ten.", temperature=GREEDY, **options)  # type: ignore[arg-type]


# --- real calls -----------------------------------------------------------------------------------------


@pytest.mark.slow
@module_loop
async def test_streaming_deltas_until_max_tokens(endpoint: LlmEndpoint, client: httpx.AsyncClient) -> None:
    deltas: list[str] = []

    result = await chat_completion(client, endpoint, count_request(max_tokens=16), on_delta=deltas.append)

    assert result.finish_reason == "length"
    # llama_cpp.server streams one chunk per generated token.
    assert len(deltas) == 16
    assert "".join(deltas) == result.text
    assert result.text.strip()
    # The server sends no usage while streaming, so the client estimates it and marks it as estimated.
    assert result.usage.estimated is True
    assert result.usage.completion_tokens > 0
    assert result.usage.prompt_tokens > 0


@pytest.mark.slow
@module_loop
async def test_token_counts_without_streaming(endpoint: LlmEndpoint, client: httpx.AsyncClient) -> None:
    result = await chat_completion(client, endpoint, count_request(max_tokens=12), stream=False)

    assert result.finish_reason == "length"
    assert result.usage.estimated is False
    assert result.usage.completion_tokens == 12
    assert result.usage.prompt_tokens > 5
    assert result.usage.total_tokens == result.usage.prompt_tokens + 12


@pytest.mark.slow
@pytest.mark.parametrize("stream", [True, False])
@module_loop
async def test_stop_sequence_ends_reply(endpoint: LlmEndpoint, client: httpx.AsyncClient, stream: bool) -> None:
    unlimited = await chat_completion(client, endpoint, count_request(max_tokens=40), stream=stream)
    assert "\n" in unlimited.text, "the greedy reply to this prompt should span several lines"

    stopped = await chat_completion(client, endpoint, count_request(max_tokens=40, stop=("\n",)), stream=stream)

    assert stopped.finish_reason == "stop"
    assert "\n" not in stopped.text
    assert unlimited.text.startswith(stopped.text)
    assert len(stopped.text) < len(unlimited.text)


@pytest.mark.slow
@module_loop
async def test_engine_llm_call_on_local_model(
    make_engine: EngineFactory, store: Store, manager: LocalModelManager, endpoint: LlmEndpoint
) -> None:
    environ = {"OPENAI_BASE_URL": endpoint.base_url}
    studio, log = await make_engine(services=ExecutorServices(store, environ=environ))
    step = {
        "id": "ask",
        "type": "llm_call",
        "config": {"model": LOCAL_MODEL_NAME, "prompt": "Count from one to ten.", "max_tokens": 8, "temperature": 0},
    }

    run_id = await studio.run_workflow(build_workflow([step]))
    summary = await studio.wait(run_id)

    assert summary.status == "completed", summary.error
    deltas = [str(event.data["text"]) for event in log.of_type(EventType.LLM_TOKEN_DELTA, run_id)]
    assert len(deltas) == 8
    assert summary.result == {"ask": "".join(deltas)}
    usage = {row["kind"]: row for row in store.usage(run_id)}
    assert usage["llm_completion_tokens"]["quantity"] > 0
    assert usage["llm_prompt_tokens"]["detail"]["base_url"] == endpoint.base_url


@pytest.mark.slow
@module_loop
async def test_step_without_endpoint_uses_local_model(manager: LocalModelManager, endpoint: LlmEndpoint) -> None:
    services = ExecutorServices(environ={})

    resolved = await resolve_step_llm(services, {"model": "", "prompt": "hi"}, manager=manager)

    assert resolved.source == "local"
    assert resolved.endpoint.base_url == endpoint.base_url
    assert resolved.model == LOCAL_MODEL_NAME
    await services.aclose()


# --- process lifetime -----------------------------------------------------------------------------------


@pytest.mark.slow
@module_loop
async def test_crashed_server_is_restarted(manager: LocalModelManager, client: httpx.AsyncClient) -> None:
    before = await manager.base_url()
    server = manager.server
    assert server is not None and server.pid is not None
    exited = _exit_watch(server.pid)
    os.kill(server.pid, signal.SIGKILL)
    await asyncio.get_running_loop().run_in_executor(None, _wait_for_exit, exited, 10.0)

    after = await manager.base_url()
    result = await chat_completion(client, LlmEndpoint("openai", after), count_request(max_tokens=2), stream=False)

    assert manager.server is not server
    assert manager.server is not None and manager.server.running
    assert result.usage.completion_tokens == 2
    assert before != after or manager.server.pid != server.pid


@pytest.mark.slow
@module_loop
async def test_stop_ends_server_process() -> None:
    own = LocalModelManager()
    await own.base_url()
    server = own.server
    assert server is not None and server.pid is not None
    exited = _exit_watch(server.pid)

    await own.stop()

    assert _wait_for_exit(exited, 0.0), "the server process still runs after stop() returned"
    assert not server.running
    await own.stop()


@pytest.mark.slow
def test_server_exits_with_its_parent(tmp_path: Path) -> None:
    script = tmp_path / "owner.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio, sys
            from studio.llm_local import LocalModelManager

            async def main() -> None:
                manager = LocalModelManager()
                await manager.base_url()
                assert manager.server is not None
                sys.stdout.write(f"{manager.server.pid}\\n")
                sys.stdout.flush()
                await asyncio.Event().wait()

            asyncio.run(main())
            """
        )
    )
    owner = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
    )
    try:
        assert owner.stdout is not None
        server_pid = int(owner.stdout.readline())
        exited = _exit_watch(server_pid)
    finally:
        owner.kill()
        owner.wait()

    # The server checks its parent once a second; allow a generous margin on a loaded machine.
    assert _wait_for_exit(exited, 15.0), f"server pid {server_pid} still runs after its parent was killed"


def test_missing_install_names_command(tmp_path: Path) -> None:
    with pytest.raises(LocalModelNotInstalledError) as caught:
        find_install({"STUDIO_LLAMA_ENV": str(tmp_path / "absent")})

    assert str(tmp_path / "absent") in str(caught.value)
    assert "tools/install-local-model.sh" in str(caught.value)


@module_loop
async def test_step_without_anything_names_install(tmp_path: Path) -> None:
    empty = LocalModelManager(environ={"STUDIO_LLAMA_ENV": str(tmp_path / "absent")})
    services = ExecutorServices(environ={})

    with pytest.raises(LlmConfigError) as caught:
        await resolve_step_llm(services, {"model": "m", "prompt": "hi"}, manager=empty)

    message = caught.value.message
    assert "the local model is not installed" in message
    assert "tools/install-local-model.sh" in message
    assert "OPENAI_BASE_URL" in message
    assert "mark a connection as the project's default" in message
    await services.aclose()


def test_missing_model_file_names_command(tmp_path: Path) -> None:
    env_dir = tmp_path / "llama"
    (env_dir / "bin").mkdir(parents=True)
    (env_dir / "bin" / "python").write_text("")

    with pytest.raises(LocalModelNotInstalledError) as caught:
        find_install({"STUDIO_LLAMA_ENV": str(env_dir)})

    assert "gemma-3-270m-q4_k_m.gguf is missing" in str(caught.value)
    assert "tools/install-local-model.sh" in str(caught.value)


def _exit_watch(pid: int) -> int:
    """Return a pidfd of ``pid``: it becomes readable when the process exits, even if it is not our child."""
    return os.pidfd_open(pid)


def _wait_for_exit(pidfd: int, timeout_s: float) -> bool:
    """Wait until the process of ``pidfd`` exits; return whether it did within ``timeout_s``, and close the fd."""
    try:
        readable, _, _ = select.select([pidfd], [], [], timeout_s)
        return bool(readable)
    finally:
        os.close(pidfd)
