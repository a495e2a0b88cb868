"""Start the studio window: QApplication, the qasync event loop and the main window."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

SCREENSHOT_ENV = "STUDIO_SCREENSHOT"
"""When set to a PNG path, the app saves a picture of its window there and quits."""
SCREENSHOT_DELAY_ENV = "STUDIO_SCREENSHOT_DELAY_MS"
"""Milliseconds between showing the window (or the end of the run) and the picture. Default: 1500."""
SCREENSHOT_RUN_ENV = "STUDIO_SCREENSHOT_RUN"
"""When ``1``, the workflow is run with its default inputs before the picture is taken."""


def run_gui(argv: list[str]) -> int:
    """Open the studio window, run until it is closed and return the process exit code.

    ``argv[0]``, if given, is a workflow file to open. Without it the first example is opened,
    and an empty canvas is shown when there is none.
    """
    os.environ.setdefault("QT_API", "pyside6")
    from PySide6.QtWidgets import QApplication

    from studio.app.event_loop import close_event_loop, new_event_loop

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "studio"])
    assert isinstance(app, QApplication)
    app.setApplicationName("Workflow Studio")
    # The window's close event ends the main coroutine, which closes the engine before the loop stops.
    app.setQuitOnLastWindowClosed(False)
    path = Path(argv[0]) if argv else None
    loop = new_event_loop(app)
    asyncio.set_event_loop(loop)
    try:
        exit_code: int = loop.run_until_complete(_main(path))
        return exit_code
    finally:
        close_event_loop(loop)
        asyncio.set_event_loop(None)


FIRST_EXAMPLE = "text-report.workflow.json"


async def _main(path: Path | None) -> int:
    from studio.app.main_window import MainWindow, example_paths

    window = MainWindow()
    closed = asyncio.Event()
    window.sig_window_closed.connect(closed.set)
    window.show()
    if path is not None:
        window.open_workflow(path)
    else:
        examples = example_paths()
        if examples:
            # The paragraph report needs no API key and shows every step type but llm_call.
            preferred = [example for example in examples if example.name == FIRST_EXAMPLE]
            window.open_workflow((preferred or examples)[0])
        else:
            window.statusBar().showMessage("No example workflows found; use File > Open to open one")

    try:
        resumed = await window.controller.resume_interrupted()
    except Exception as error:  # the window stays usable; the runs stay in the store for `studio resume`
        logger.exception("Resuming interrupted runs failed")
        window.show_error("Could not resume interrupted runs", str(error))
    else:
        if resumed:
            window.statusBar().showMessage(f"Resumed {len(resumed)} interrupted run(s)")

    screenshot = os.environ.get(SCREENSHOT_ENV)
    if screenshot:
        await _take_screenshot(window, Path(screenshot))
        window.close()
    await closed.wait()
    await window.aclose()
    return 0


async def _take_screenshot(window: object, target: Path) -> None:
    from studio.app.main_window import MainWindow

    assert isinstance(window, MainWindow)
    if os.environ.get(SCREENSHOT_RUN_ENV) == "1" and window.workflow is not None:
        finished = asyncio.Event()
        window.sig_run_state_changed.connect(
            lambda state: finished.set() if state in ("completed", "failed", "stopped", "waiting") else None
        )
        if await window.start_run() is not None:
            await asyncio.wait_for(finished.wait(), timeout=60.0)
    delay_ms = int(os.environ.get(SCREENSHOT_DELAY_ENV, "1500"))
    await asyncio.sleep(delay_ms / 1000.0)
    if window.grab().save(str(target)):
        logger.info("saved a screenshot of the window to %s", target)
    else:
        logger.error("could not save the screenshot to %s. Check that the folder exists", target)
