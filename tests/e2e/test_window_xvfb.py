"""The studio window on a real X server (Xvfb): started as a user starts it, it runs a workflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from studio.store import open_store

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("xvfb-run") is None,
    reason="xvfb-run is not installed (Debian: apt-get install xvfb); tools/bootstrap-test-deps.sh installs it as root",
)


def test_window_runs_example_on_xvfb(tmp_path: Path) -> None:
    picture = tmp_path / "window.png"
    environment = {
        **os.environ,
        "STUDIO_DATA_DIR": str(tmp_path / "data"),
        "QT_QPA_PLATFORM": "xcb",
        "QT_API": "pyside6",
        "STUDIO_SCREENSHOT": str(picture),
        "STUDIO_SCREENSHOT_RUN": "1",
        "STUDIO_SCREENSHOT_DELAY_MS": "200",
    }
    example = ROOT / "resources" / "examples" / "text-report.workflow.json"
    completed = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable, "-m", "studio", "gui", str(example)],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    assert picture.stat().st_size > 20_000, "the screenshot is too small to show the window"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    store = open_store(tmp_path / "data" / "studio.db")
    try:
        runs = store.list_runs()
        assert len(runs) == 1
        assert runs[0].status == "waiting", "the example stops at its approval step"
        steps = store.step_runs(runs[0].id)
        assert steps["score"].status == "completed"
        assert steps["review"].status == "waiting"
        assert len(store.list_tasks(run_id=runs[0].id)) == 1
    finally:
        store.close()
