"""One llama_cpp.server process on 127.0.0.1: start on a free port, wait until it serves, stop."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from studio.llm_local.paths import LOCAL_MODEL_NAME, LocalModelInstall

logger = logging.getLogger(__name__)

_SERVE_CHILD = Path(__file__).with_name("serve_child.py")
# uvicorn prints this line once the socket accepts connections (uvicorn 0.x, as llama_cpp.server 0.3 runs it).
_READY_MARKER = "Uvicorn running on"
_ADDRESS_IN_USE_MARKERS = ("address already in use", "error while attempting to bind")
# Lines of server output kept for error messages.
_OUTPUT_TAIL_LINES = 40
# Seconds to wait for the process to exit after SIGTERM before it is killed.
_STOP_GRACE_S = 5.0
# Starts with a new port when another process bound the chosen one before the server did.
_MAX_PORT_ATTEMPTS = 3


class LocalModelStartError(RuntimeError):
    """The local model server exited or did not become ready. The message contains the end of its output."""


@dataclass(frozen=True)
class LocalServerSettings:
    """Settings of the llama_cpp.server process."""

    # Context window in tokens: the prompt and the reply together must fit.
    context_tokens: int = 4096
    # CPU threads for generation. None lets llama.cpp choose.
    threads: int | None = None
    # Seconds to wait for the model to load and the server to accept requests.
    startup_timeout_s: float = 120.0


class LocalModelServer:
    """A llama_cpp.server child process that serves one model through the OpenAI protocol on loopback.

    The process is independent of any event loop, so one server can serve several loops in turn (the
    studio's qasync loop, a test's loop). ``stop_now`` ends it synchronously, for interpreter exit.
    """

    def __init__(self, install: LocalModelInstall, settings: LocalServerSettings | None = None) -> None:
        self.install = install
        self.settings = settings or LocalServerSettings()
        self.port: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._output_tail: collections.deque[str] = collections.deque(maxlen=_OUTPUT_TAIL_LINES)
        self._state_lock = threading.Lock()
        self._ready = False
        self._exited = False
        # Coroutines waiting for a state change: their loop, their future, and the condition they wait for.
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None], Callable[[], bool]]] = []

    @property
    def base_url(self) -> str:
        """OpenAI base URL of the running server, such as ``http://127.0.0.1:41234/v1``."""
        if self.port is None:
            raise RuntimeError("the local model server is not started")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """Whether the server was ready and its process has not exited."""
        process = self._process
        if process is None or not self._ready or self._exited:
            return False
        return not _has_exited(process.pid)

    def output_tail(self) -> str:
        """Return the last lines the server printed, for error messages."""
        with self._state_lock:
            return "\n".join(self._output_tail)

    async def start(self) -> None:
        """Start the server and wait until ``GET /v1/models`` returns 200.

        Raises:
            LocalModelStartError: the process exited, or was not ready within ``startup_timeout_s``.
        """
        for attempt in range(1, _MAX_PORT_ATTEMPTS + 1):
            self._spawn(_free_port())
            try:
                await self._wait_ready()
                break
            except LocalModelStartError:
                port_in_use = any(marker in self.output_tail().lower() for marker in _ADDRESS_IN_USE_MARKERS)
                if not port_in_use or attempt == _MAX_PORT_ATTEMPTS:
                    raise
                logger.info("Port %s of the local model server is in use; trying another port", self.port)
        await self._check_serving()
        logger.info("Local model server pid %s serves %s at %s", self.pid, self.install.model_file, self.base_url)

    def _spawn(self, port: int) -> None:
        self.port = port
        self._ready = False
        self._exited = False
        self._output_tail.clear()
        command = [
            str(self.install.python),
            str(_SERVE_CHILD),
            str(os.getpid()),
            "--",
            "--model",
            str(self.install.model_file),
            "--model_alias",
            LOCAL_MODEL_NAME,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(self.settings.context_tokens),
            # The GGUF file has no chat template that llama-cpp-python 0.3.36 picks up, and its fallback
            # (the Llama 2 format) confuses a Gemma model.
            "--chat_format",
            "gemma",
        ]
        if self.settings.threads is not None:
            command += ["--n_threads", str(self.settings.threads)]
        logger.info("Starting the local model server on 127.0.0.1:%d", port)
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            # Its own process group, so a Ctrl+C in the studio's terminal reaches the studio only. The
            # studio stops the server itself.
            start_new_session=True,
        )
        reader = threading.Thread(
            target=self._read_output, args=(self._process,), name="local-model-output", daemon=True
        )
        reader.start()

    def _read_output(self, process: subprocess.Popen[str]) -> None:
        """Keep the pipe drained (a full pipe would block the server), keep a tail, and note readiness and exit."""
        assert process.stdout is not None
        for line in process.stdout:
            text = line.rstrip()
            logger.debug("local model server: %s", text)
            with self._state_lock:
                self._output_tail.append(text)
            if not self._ready and _READY_MARKER in text:
                with self._state_lock:
                    self._ready = True
                self._notify_waiters()
        process.wait()
        with self._state_lock:
            self._exited = True
        self._notify_waiters()

    def _notify_waiters(self) -> None:
        with self._state_lock:
            due = [waiter for waiter in self._waiters if waiter[2]()]
            self._waiters = [waiter for waiter in self._waiters if not waiter[2]()]
        for loop, future, _condition in due:
            loop.call_soon_threadsafe(_resolve, future)

    async def _wait_for(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``condition()`` holds, checked when the server becomes ready or exits; False on timeout."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter = (loop, future, condition)
        with self._state_lock:
            if condition():
                return True
            self._waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return False
        finally:
            with self._state_lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        return True

    async def _wait_ready(self) -> None:
        settled = await self._wait_for(lambda: self._ready or self._exited, self.settings.startup_timeout_s)
        if not settled:
            await self.stop()
            raise LocalModelStartError(
                f"the local model server did not start within {self.settings.startup_timeout_s:g} s; "
                f"its last output:\n{self.output_tail()}"
            )
        if self._exited or not self._ready:
            code = None if self._process is None else self._process.poll()
            raise LocalModelStartError(
                f"the local model server exited with code {code} while starting; its last output:\n{self.output_tail()}"
            )

    async def _check_serving(self) -> None:
        url = f"{self.base_url}/models"
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.get(url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            await self.stop()
            raise LocalModelStartError(f"the local model server at {url} failed its first request: {exc}") from None

    async def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after a few seconds. Does nothing when it is not running."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        logger.info("Stopping the local model server pid %d", process.pid)
        process.terminate()
        if await self._wait_for(lambda: self._exited, _STOP_GRACE_S):
            return
        logger.warning("Local model server pid %d ignored SIGTERM for %.0f s; killing it", process.pid, _STOP_GRACE_S)
        process.kill()
        await self._wait_for(lambda: self._exited, _STOP_GRACE_S)

    def stop_now(self) -> None:
        """Stop the server and wait for its exit, blocking. Safe to call more than once and at interpreter exit."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        logger.info("Stopping the local model server pid %d", process.pid)
        process.terminate()
        try:
            process.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            logger.warning(
                "Local model server pid %d ignored SIGTERM for %.0f s; killing it", process.pid, _STOP_GRACE_S
            )
            process.kill()
            process.wait()


def _has_exited(pid: int) -> bool:
    """Return whether child process ``pid`` has exited, without reaping it.

    Popen.poll() returns None while another thread waits on the process (the output reader does), so it
    cannot tell a dead server from a running one here.
    """
    try:
        status = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return status is not None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago. The server binds it soon after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
