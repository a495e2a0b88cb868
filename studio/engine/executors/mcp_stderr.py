"""Capture of an MCP server subprocess's stderr into a bounded ring buffer of lines."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import threading
from collections.abc import Callable
from typing import TextIO

logger = logging.getLogger(__name__)

MAX_LINES = 500
MAX_LINE_CHARS = 2000


class StderrRing:
    """A pipe whose write end becomes the server's stderr; a reader thread keeps the last MAX_LINES lines.

    `on_line`, when given, receives every line on the reader thread as it arrives, and `on_closed`
    is called on that thread after the last line. `hide`, when given, rewrites each line before it is
    logged, kept or passed on, so that it can replace secrets the server prints.

    The SDK hands `errlog` to the subprocess as its stderr file descriptor, so a real pipe is needed
    (an in-memory stream has no descriptor). The reader reaches end of file once the server and every
    child that inherited the descriptor have exited, which makes `exited` a reliable sign of death
    for stdio servers.
    """

    def __init__(
        self,
        server_name: str,
        on_line: Callable[[str], None] | None = None,
        on_closed: Callable[[], None] | None = None,
        hide: Callable[[str], str] | None = None,
    ) -> None:
        self._server_name = server_name
        self._hide = hide
        self._on_line = on_line
        self._on_closed = on_closed
        self._lines: collections.deque[str] = collections.deque(maxlen=MAX_LINES)
        self._lock = threading.Lock()
        self._eof = threading.Event()
        read_fd, write_fd = os.pipe()
        # Both ends outlive this method: the reader thread closes one, release_writer the other.
        self._reader = open(read_fd, "rb", buffering=0)  # noqa: SIM115
        self._writer: TextIO | None = open(write_fd, "w", encoding="utf-8")  # noqa: SIM115
        self._thread = threading.Thread(target=self._read_lines, name=f"mcp-stderr-{server_name}", daemon=True)
        self._thread.start()

    @property
    def errlog(self) -> TextIO:
        """The file to pass as the subprocess's stderr."""
        if self._writer is None:
            raise RuntimeError("the stderr pipe's write end is already closed")
        return self._writer

    @property
    def exited(self) -> bool:
        """True once every holder of the pipe's write end, the server included, has closed it."""
        return self._eof.is_set()

    def release_writer(self) -> None:
        """Close this process's copy of the write end; call it once the subprocess has been started."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def tail(self, lines: int = 20) -> str:
        """Return the last `lines` lines, joined by newlines."""
        with self._lock:
            captured = list(self._lines)
        return "\n".join(captured[-lines:]) if lines > 0 else ""

    async def wait_closed(self, timeout_s: float) -> bool:
        """Wait up to timeout_s for end of file, so a tail taken after a crash contains the last lines."""
        return await asyncio.to_thread(self._eof.wait, timeout_s)

    def _read_lines(self) -> None:
        pending = b""
        try:
            while chunk := self._reader.read(65536):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    self._append(raw)
                if len(pending) > MAX_LINE_CHARS * 4:
                    self._append(pending)
                    pending = b""
            if pending:
                self._append(pending)
        except OSError:
            logger.exception("reading stderr of MCP server %s failed", self._server_name)
        finally:
            self._reader.close()
            self._eof.set()
            if self._on_closed is not None:
                self._on_closed()

    def _append(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if self._hide is not None:
            line = self._hide(line)
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + " [line cut]"
        logger.debug("MCP server %s stderr: %s", self._server_name, line)
        with self._lock:
            self._lines.append(line)
        if self._on_line is not None:
            # Runs on the reader thread; the callback must hand the line over to its own thread or loop.
            self._on_line(line)
