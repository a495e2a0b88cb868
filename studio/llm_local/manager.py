"""The process-wide local model: started on first use, restarted after a crash, stopped at interpreter exit."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from collections.abc import Mapping

from studio.llm_local.paths import LOCAL_MODEL_NAME, find_install
from studio.llm_local.server import LocalModelServer, LocalServerSettings

logger = logging.getLogger(__name__)


class LocalModelManager:
    """Owner of at most one local model server: returns its base URL and starts the server when needed."""

    def __init__(self, environ: Mapping[str, str] | None = None, settings: LocalServerSettings | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self._settings = settings
        self._server: LocalModelServer | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @property
    def model_name(self) -> str:
        return LOCAL_MODEL_NAME

    @property
    def server(self) -> LocalModelServer | None:
        """The current server, running or not. None before the first ``base_url()`` call."""
        return self._server

    def is_installed(self) -> bool:
        """Return whether the environment and the model file exist (without starting anything)."""
        try:
            find_install(self._environ)
        except RuntimeError:
            return False
        return True

    async def base_url(self) -> str:
        """Return the OpenAI base URL of the running server, starting the server first when it is not running.

        Raises:
            LocalModelNotInstalledError: the model is not installed; the message names the install command.
            LocalModelStartError: the server exited or did not become ready.
        """
        async with self._loop_lock():
            server = self._server
            if server is None or not server.running:
                if server is not None:
                    logger.warning(
                        "The local model server stopped (output: %s); starting it again", server.output_tail()
                    )
                server = LocalModelServer(find_install(self._environ), self._settings)
                self._server = server
                await server.start()
            return server.base_url

    async def stop(self) -> None:
        """Stop the server when one runs."""
        if self._server is not None:
            await self._server.stop()

    def stop_now(self) -> None:
        """Stop the server when one runs, and block until it exits (for interpreter exit and signal handlers)."""
        if self._server is not None:
            self._server.stop_now()

    def _loop_lock(self) -> asyncio.Lock:
        # An asyncio.Lock belongs to one event loop, and tests and the app may call from different loops in turn.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock = asyncio.Lock()
            self._lock_loop = loop
        return self._lock


_shared_manager: LocalModelManager | None = None
_shared_lock = threading.Lock()


def shared_manager() -> LocalModelManager:
    """Return the process-wide manager, created on first use. Its server is stopped when the interpreter exits."""
    global _shared_manager
    with _shared_lock:
        if _shared_manager is None:
            _shared_manager = LocalModelManager()
            atexit.register(_shared_manager.stop_now)
        return _shared_manager
