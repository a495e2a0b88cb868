"""Crash recovery: unsaved documents are written to recovery files, which the next start offers to restore.

While a document is dirty, its content is written atomically about one second after the last
change to ``<recovery dir>/<workflow id>.recovery.json``. A clean save, an undo back to the saved
state and an explicit discard remove the file. Files of processes that are still running are
not offered, so two open windows do not offer each other's drafts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from PySide6.QtCore import QObject, QTimer, Signal

from studio.canvas.document import EditorDocument
from studio.model.document import DocumentError, workflow_from_data, workflow_to_data
from studio.model.workflow import Workflow

logger = logging.getLogger(__name__)

RECOVERY_DELAY_MS = 1000
"""Quiet time after the last change before the recovery file is written, in milliseconds."""
RECOVERY_SUFFIX = ".recovery.json"
RECOVERY_FORMAT = 1
"""Version of the recovery file layout (the workflow inside has its own schema_version)."""
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")


def default_recovery_dir(store_path: Path | None = None) -> Path:
    """Return the recovery folder: beside the store file when one is given, else under the user data folder."""
    if store_path is not None:
        return Path(store_path).parent / "recovery"
    return Path(platformdirs.user_data_dir("workflow-studio", appauthor=False)) / "recovery"


@dataclass(frozen=True)
class RecoveryFile:
    """One recovery file found on disk and the draft it contains."""

    file: Path
    workflow: Workflow
    source_path: Path | None
    """The workflow file the draft was opened from, or None for a new workflow."""
    written_at: float
    """Seconds since the epoch when the draft was written."""
    pid: int


def recovery_file_name(workflow_id: str) -> str:
    """Return a file name for ``workflow_id`` that is safe on every file system."""
    safe = _SAFE_NAME.sub("_", workflow_id)[:80]
    if safe != workflow_id:
        safe += "-" + hashlib.sha256(workflow_id.encode("utf-8")).hexdigest()[:12]
    return safe + RECOVERY_SUFFIX


def write_recovery_file(directory: Path, workflow: Workflow, source_path: Path | None) -> Path:
    """Write ``workflow`` atomically as a recovery file in ``directory`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / recovery_file_name(workflow.id)
    data: dict[str, Any] = {
        "format": RECOVERY_FORMAT,
        "pid": os.getpid(),
        "written_at": time.time(),
        "source_path": str(source_path) if source_path is not None else None,
        "workflow": workflow_to_data(workflow),
    }
    descriptor, temporary_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    temporary = Path(temporary_name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def read_recovery_file(file: Path) -> RecoveryFile:
    """Read one recovery file; raise DocumentError naming the file when it cannot be used."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DocumentError(str(file), [("", f"cannot read the recovery file: {error}")]) from None
    if not isinstance(data, dict) or data.get("format") != RECOVERY_FORMAT:
        raise DocumentError(str(file), [("format", f"expected recovery file format {RECOVERY_FORMAT}")])
    workflow = workflow_from_data(data.get("workflow"), str(file))
    source = data.get("source_path")
    pid = data.get("pid")
    written_at = data.get("written_at")
    return RecoveryFile(
        file=file,
        workflow=workflow,
        source_path=Path(source) if isinstance(source, str) else None,
        written_at=float(written_at) if isinstance(written_at, int | float) else file.stat().st_mtime,
        pid=pid if isinstance(pid, int) else 0,
    )


def find_recovery_files(directory: Path) -> list[RecoveryFile]:
    """Return the readable recovery files in ``directory`` whose writing process is gone, oldest first.

    Unreadable files are logged and skipped, and left in place for a person to inspect.
    """
    if not directory.is_dir():
        return []
    found: list[RecoveryFile] = []
    for file in sorted(directory.glob("*" + RECOVERY_SUFFIX)):
        try:
            recovery = read_recovery_file(file)
        except DocumentError as error:
            logger.warning("skipping recovery file %s: %s", file, error)
            continue
        if recovery.pid != os.getpid() and _process_alive(recovery.pid):
            logger.info("recovery file %s belongs to running process %d, so it is not offered", file, recovery.pid)
            continue
        found.append(recovery)
    return sorted(found, key=lambda recovery: recovery.written_at)


def _process_alive(pid: int) -> bool:
    # NOTE: a recycled process id makes a crashed draft look alive until that process ends.
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RecoveryWriter(QObject):
    """Keeps the recovery file of one :class:`EditorDocument` up to date while it is dirty."""

    sig_written = Signal(str)
    """Emitted with the recovery file path after each write."""
    sig_removed = Signal(str)
    """Emitted with the recovery file path after the file was removed."""

    def __init__(self, document: EditorDocument, directory: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.directory = directory
        self._file: Path | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RECOVERY_DELAY_MS)
        self._timer.timeout.connect(self.write_now)
        document.sig_changed.connect(self._on_document_changed)
        document.sig_dirty_changed.connect(self._on_document_dirty_changed)
        document.sig_reset.connect(self._on_document_reset)

    @property
    def file(self) -> Path | None:
        """The recovery file written for the current document, if any."""
        return self._file

    def write_now(self) -> Path | None:
        """Write the recovery file at once if the document is dirty; return its path."""
        self._timer.stop()
        if not self.document.is_dirty():
            return None
        try:
            self._file = write_recovery_file(self.directory, self.document.workflow, self.document.path)
        except OSError as error:
            logger.error("cannot write the recovery file of workflow %s in %s: %s",
                         self.document.workflow_id, self.directory, error)
            return None
        logger.debug("wrote recovery file %s", self._file)
        self.sig_written.emit(str(self._file))
        return self._file

    def discard(self) -> None:
        """Remove the current document's recovery file: the user saved or chose to discard the changes."""
        self._timer.stop()
        file = self._file or self.directory / recovery_file_name(self.document.workflow_id)
        self._file = None
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
            logger.info("removed recovery file %s", file)
            self.sig_removed.emit(str(file))

    def _on_document_changed(self) -> None:
        if self.document.is_dirty():
            self._timer.start()

    def _on_document_dirty_changed(self, dirty: bool) -> None:
        # Only a file of the current document goes; loading another document keeps older drafts on disk.
        if not dirty and self._file is not None:
            self.discard()

    def _on_document_reset(self) -> None:
        # The previous draft was saved, discarded through discard(), or replaced by a caller that
        # chose to keep its file on disk. A dirty new document is a restored draft, whose file
        # (named by the workflow id) becomes the current one.
        self._timer.stop()
        self._file = None
        if self.document.is_dirty():
            self._file = self.directory / recovery_file_name(self.document.workflow_id)
            self._timer.start()
