"""WAL checkpoints on a thread of their own, so that the checkpoints inside journal commits find little to copy.

In WAL mode a commit appends pages to the ``-wal`` file, and a checkpoint copies them into the
database file and syncs it. SQLite makes a checkpoint inside whichever commit takes the WAL past
1,000 pages. The journal commits on the event loop's thread, and there such a commit took 10-12 ms
instead of about 1 ms, once every few runs of 1,000 steps. A :class:`WalCheckpointer` copies pages
on its own connection shortly after commits, while sqlite3 releases the GIL, so the checkpoints
inside commits have less left to copy: 5-7 ms in the same measurement (a timing script, not a
benchmark).

The checkpoints inside commits stay. The WAL restarts from its beginning only when a write begins
after a checkpoint that copied every page, and only the writer's own checkpoint, made between two
of its commits, is sure to be one. With checkpoints left to this thread alone, the WAL of a long
run grew by everything the run wrote.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from studio.store.database import BUSY_TIMEOUT_MS, configure_connection

logger = logging.getLogger(__name__)

CHECKPOINT_DELAY_S = 0.05
"""Time between the first commit after a checkpoint and the next checkpoint.

Commits made meanwhile are copied by that one checkpoint. With 0.25 s, the checkpoints inside
commits had more left to copy and took up to 11 ms again.
"""


class WalCheckpointer:
    """A daemon thread with its own connection that checkpoints the WAL soon after commits.

    Call :meth:`notify` after each commit. Checkpoints are PASSIVE: they copy the pages that no
    reader still needs, without waiting for readers or writers to finish.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wake = threading.Event()
        self._closing = threading.Event()
        self.checkpoints = 0
        """Checkpoints made so far."""
        self._thread = threading.Thread(target=self._loop, name="studio-wal-checkpoint", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Note that a commit added pages to the WAL; a checkpoint follows within ``CHECKPOINT_DELAY_S``."""
        self._wake.set()

    def close(self) -> None:
        """Stop the thread after one last checkpoint of what is committed, and close its connection."""
        self._closing.set()
        self._wake.set()
        self._thread.join()

    def _loop(self) -> None:
        connection = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        try:
            configure_connection(connection)
            while True:
                self._wake.wait()
                self._closing.wait(CHECKPOINT_DELAY_S)
                self._wake.clear()
                self._checkpoint(connection)
                if self._closing.is_set():
                    return
        except sqlite3.Error as error:
            logger.warning(
                "WAL checkpoint thread of %s stopped after an error: %s. Journal commits still checkpoint on their own",
                self._path,
                error,
            )
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            busy, wal_pages, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.OperationalError as error:
            # For example, another process is making a checkpoint. The next commit wakes this thread again.
            logger.debug("WAL checkpoint of %s skipped: %s", self._path, error)
            return
        self.checkpoints += 1
        logger.debug("WAL checkpoint of %s: %d of %d pages copied (busy=%d)", self._path, copied, wal_pages, busy)
