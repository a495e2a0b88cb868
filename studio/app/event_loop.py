"""The qasync event loop the GUI runs on, with plain Python threads as its default executor."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os

os.environ.setdefault("QT_API", "pyside6")  # qasync picks the first Qt binding it finds unless QT_API names one

import qasync
from PySide6.QtCore import QCoreApplication

logger = logging.getLogger(__name__)

DEFAULT_EXECUTOR_WORKERS = 8
"""Threads for ``run_in_executor(None, ...)``, which runs Lua scripts and ``asyncio.to_thread`` calls."""


def new_event_loop(app: QCoreApplication) -> qasync.QEventLoop:
    """Return a qasync loop on ``app`` whose default executor is a ``ThreadPoolExecutor``.

    qasync's own default executor runs jobs on QThreads. With PySide6 6.11.3, qasync 0.28 and
    lupa 2.8 on CPython 3.11, the process crashed with a segmentation fault when such a thread
    ended after running a Lua script, which happens when the loop is closed after a lua_script run.
    """
    loop = qasync.QEventLoop(app)
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(DEFAULT_EXECUTOR_WORKERS, thread_name_prefix="studio-worker")
    )
    return loop


def close_event_loop(loop: qasync.QEventLoop) -> None:
    """Cancel the loop's remaining tasks, finish async generators and close the loop."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        logger.debug("cancelled %d tasks left at exit", len(pending))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
