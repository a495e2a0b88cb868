"""Crash recovery tests: drafts written while dirty, removed when clean, and restored after a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import pipeline_document
from PySide6.QtWidgets import QApplication, QMessageBox

from studio.app.main_window import MainWindow
from studio.app.recovery import (
    RECOVERY_SUFFIX,
    RecoveryWriter,
    find_recovery_files,
    read_recovery_file,
    recovery_file_name,
    write_recovery_file,
)
from studio.canvas.document import EditorDocument
from studio.model.document import load_workflow, workflow_from_data

REPOSITORY = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 90.0

CHILD_SCRIPT = """
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

app = QApplication([])
from studio.app.main_window import MainWindow

window = MainWindow(store_path=Path(sys.argv[1]))
assert window.open_workflow(sys.argv[2])
window.editor.recovery.sig_written.connect(lambda path: print("written", path, flush=True))
window.document.move_steps({"total": (123.0, 456.0)})
window.document.rename_step("announce", "finish")
print("edited", flush=True)
app.exec()
"""


@pytest.fixture
def document(qapp: QApplication) -> EditorDocument:
    editor = EditorDocument()
    editor.load(workflow_from_data(pipeline_document()))
    return editor


def recovery_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*" + RECOVERY_SUFFIX))


# -- the writer -----------------------------------------------------------------------------


def test_dirty_document_written_after_delay(document: EditorDocument, tmp_path: Path, qtbot: Any) -> None:
    writer = RecoveryWriter(document, tmp_path)
    document.move_steps({"total": (5.0, 6.0)})
    assert recovery_files(tmp_path) == []
    with qtbot.waitSignal(writer.sig_written, timeout=5000) as blocker:
        pass
    file = Path(blocker.args[0])
    assert file == tmp_path / recovery_file_name(document.workflow_id)
    draft = read_recovery_file(file)
    assert draft.workflow == document.workflow
    assert draft.pid == os.getpid()


def test_undo_to_clean_removes_file(document: EditorDocument, tmp_path: Path, qtbot: Any) -> None:
    writer = RecoveryWriter(document, tmp_path)
    document.move_steps({"total": (5.0, 6.0)})
    assert writer.write_now() is not None
    with qtbot.waitSignal(writer.sig_removed, timeout=5000):
        document.undo_stack.undo()
    assert recovery_files(tmp_path) == []


def test_save_removes_file(document: EditorDocument, tmp_path: Path) -> None:
    writer = RecoveryWriter(document, tmp_path / "recovery")
    document.move_steps({"total": (5.0, 6.0)})
    assert writer.write_now() is not None
    document.save(tmp_path / "saved.workflow.json")
    assert recovery_files(tmp_path / "recovery") == []


def test_clean_document_writes_nothing(document: EditorDocument, tmp_path: Path) -> None:
    writer = RecoveryWriter(document, tmp_path)
    assert writer.write_now() is None
    assert recovery_files(tmp_path) == []


def test_loading_another_document_keeps_draft(document: EditorDocument, tmp_path: Path) -> None:
    writer = RecoveryWriter(document, tmp_path)
    document.move_steps({"total": (5.0, 6.0)})
    written = writer.write_now()
    document.load(workflow_from_data({"schema_version": 1, "steps": []}))
    assert written is not None
    assert written.exists()


# -- finding files --------------------------------------------------------------------------


def test_find_skips_live_and_broken_files(document: EditorDocument, tmp_path: Path) -> None:
    own = write_recovery_file(tmp_path, document.workflow, None)
    other = workflow_from_data({"schema_version": 1, "name": "Other", "steps": []})
    live = write_recovery_file(tmp_path, other, None)
    data = json.loads(live.read_text(encoding="utf-8"))
    data["pid"] = os.getppid()  # the process that started pytest is still running
    live.write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / ("broken" + RECOVERY_SUFFIX)).write_text("{not json", encoding="utf-8")
    found = find_recovery_files(tmp_path)
    assert [draft.file for draft in found] == [own]
    assert find_recovery_files(tmp_path / "absent") == []


def test_file_name_is_safe_for_odd_ids() -> None:
    name = recovery_file_name("../../etc/passwd")
    assert "/" not in name
    assert name.endswith(RECOVERY_SUFFIX)
    assert recovery_file_name("abc-123") == "abc-123" + RECOVERY_SUFFIX


# -- the window -----------------------------------------------------------------------------


def open_window(qtbot: Any, store: Path) -> MainWindow:
    window = MainWindow(store_path=store)
    qtbot.addWidget(window)
    window.show()
    return window


def test_window_discard_button_deletes(qtbot: Any, tmp_path: Path, document: EditorDocument) -> None:
    recovery_dir = tmp_path / "recovery"
    file = write_recovery_file(recovery_dir, document.workflow, None)
    window = open_window(qtbot, tmp_path / "studio.db")
    qtbot.waitUntil(lambda: window.editor.recovery_box is not None, timeout=5000)
    box = window.editor.recovery_box
    assert box is not None
    box.button(QMessageBox.StandardButton.Discard).click()
    assert not file.exists()
    assert not window.has_workflow


def test_window_ignore_keeps_file(qtbot: Any, tmp_path: Path, document: EditorDocument) -> None:
    file = write_recovery_file(tmp_path / "recovery", document.workflow, None)
    window = open_window(qtbot, tmp_path / "studio.db")
    qtbot.waitUntil(lambda: window.editor.recovery_box is not None, timeout=5000)
    box = window.editor.recovery_box
    assert box is not None
    box.button(QMessageBox.StandardButton.Ignore).click()
    assert file.exists()
    assert window.editor.recovery_box is None


def test_restore_after_sigkill(qtbot: Any, tmp_path: Path, write_workflow: Any) -> None:
    path = write_workflow(pipeline_document())
    store = tmp_path / "studio.db"
    script = tmp_path / "child.py"
    script.write_text(CHILD_SCRIPT, encoding="utf-8")
    environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPOSITORY)}
    child = subprocess.Popen(
        [sys.executable, str(script), str(store), str(path)],
        cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: list[str] = []
    written = threading.Event()

    def read_output() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append(line.strip())
            if line.startswith("written"):
                written.set()
                return

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    try:
        assert written.wait(CHILD_TIMEOUT_S), f"the child never wrote a recovery file; output: {lines}"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(CHILD_TIMEOUT_S)
    assert child.returncode == -signal.SIGKILL
    assert "edited" in lines
    assert load_workflow(path).step("announce").position is None

    window = open_window(qtbot, store)
    qtbot.waitUntil(lambda: window.editor.recovery_box is not None, timeout=5000)
    box = window.editor.recovery_box
    assert box is not None
    assert "Squares pipeline" in box.text()
    restore = next(button for button in box.buttons() if button.text() == "Restore")
    restore.click()

    document = window.document
    assert document.is_dirty()
    assert window.isWindowModified()
    assert document.path == path
    assert document.has_step("finish")
    assert not document.has_step("announce")
    position = document.find_step("total").position
    assert position is not None
    assert (position.x, position.y) == (123.0, 456.0)
    assert window.scene.node_item("finish") is not None

    assert window.editor.save()
    assert recovery_files(tmp_path / "recovery") == []
    assert load_workflow(path).step("finish").id == "finish"
