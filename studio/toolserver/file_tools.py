"""File tools of the studio tool server, confined to one root directory."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

ROOT_ENV_VAR = "STUDIO_TOOLS_ROOT"
MAX_READ_BYTES = 10_000_000
MAX_LIST_ENTRIES = 10_000


class FileEntry(BaseModel):
    path: str = Field(description="Path relative to the root, with '/' separators.")
    type: Literal["file", "directory", "other"]
    size: int = Field(description="Size in bytes; 0 for directories.")


class FileList(BaseModel):
    entries: list[FileEntry]
    count: int
    truncated: bool


class FileContent(BaseModel):
    path: str
    content: str
    size: int = Field(description="Size of the whole file in bytes.")
    truncated: bool = Field(description="True when only the first max_bytes bytes were read.")


class FileWritten(BaseModel):
    path: str
    bytes_written: int


class LineAppended(BaseModel):
    path: str
    line_count: int = Field(description="Number of lines in the file after the append.")


class FileSandbox:
    """Resolves tool paths inside a root directory and rejects any that lead outside it.

    A path is resolved with all symlinks followed, so both `../` and a symlink pointing out of
    the root are rejected.
    """

    def __init__(self, root: str | None) -> None:
        self.root = Path(root).resolve() if root else None
        if self.root is not None and not self.root.is_dir():
            raise ValueError(f"the tools root {root!r} is not an existing directory; create it or pass another")

    def resolve(self, path: str) -> Path:
        """Return the absolute, symlink-free path for a path relative to the root.

        Raises:
            ToolError: No root is configured, or the path is absolute or leads outside the root.
        """
        if self.root is None:
            raise ToolError(
                "no root directory is configured for the file tools; start the server with --root DIR "
                f"or set {ROOT_ENV_VAR}"
            )
        if not path or "\x00" in path:
            raise ToolError(f"path {path!r} is empty or contains a NUL character")
        if Path(path).is_absolute():
            raise ToolError(f"path {path!r} is absolute; pass a path relative to the tools root")
        resolved = Path(os.path.realpath(self.root / path))
        if resolved != self.root and self.root not in resolved.parents:
            raise ToolError(
                f"path {path!r} leads outside the tools root (through '..' or a symlink); pass a path inside the root"
            )
        return resolved

    def relative(self, path: Path) -> str:
        assert self.root is not None
        return path.relative_to(self.root).as_posix() or "."


def _entry(sandbox: FileSandbox, path: Path) -> FileEntry:
    if path.is_dir():
        return FileEntry(path=sandbox.relative(path), type="directory", size=0)
    if path.is_file():
        return FileEntry(path=sandbox.relative(path), type="file", size=path.stat().st_size)
    return FileEntry(path=sandbox.relative(path), type="other", size=0)


def _reject_special_file(target: Path, path: str) -> None:
    # Opening a FIFO for writing blocks until a reader appears, which would hang the server.
    if target.exists() and not target.is_file():
        raise ToolError(f"path {path!r} is not a regular file (a FIFO, socket or device); pass a file path")


def register(server: MCPServer, sandbox: FileSandbox) -> None:
    """Add files_list, file_read, file_write and file_append_line to a server."""

    @server.tool()
    def files_list(
        path: Annotated[str, Field(description="Directory relative to the tools root.")] = ".",
        pattern: Annotated[str, Field(description="Shell-style name filter, e.g. '*.md'.")] = "*",
        recursive: Annotated[bool, Field(description="Also list subdirectories.")] = False,
    ) -> FileList:
        """List the files and directories under a directory of the tools root, sorted by path."""
        directory = sandbox.resolve(path)
        if not directory.is_dir():
            raise ToolError(f"directory {path!r} was not found under the tools root")
        candidates = directory.rglob("*") if recursive else directory.iterdir()
        entries: list[FileEntry] = []
        truncated = False
        for candidate in sorted(candidates):
            if not fnmatch.fnmatch(candidate.name, pattern):
                continue
            # A symlink inside the tree may point out of the root; such entries are skipped, not followed.
            if sandbox.root not in Path(os.path.realpath(candidate)).parents:
                continue
            if len(entries) == MAX_LIST_ENTRIES:
                truncated = True
                break
            entries.append(_entry(sandbox, candidate))
        return FileList(entries=entries, count=len(entries), truncated=truncated)

    @server.tool()
    def file_read(
        path: Annotated[str, Field(description="File relative to the tools root.")],
        max_bytes: Annotated[int, Field(ge=1, le=MAX_READ_BYTES, description="Maximum bytes to read.")] = 1_000_000,
    ) -> FileContent:
        """Read a UTF-8 text file under the tools root."""
        target = sandbox.resolve(path)
        if not target.is_file():
            raise ToolError(f"file {path!r} was not found under the tools root")
        size = target.stat().st_size
        with target.open("rb") as stream:
            data = stream.read(max_bytes)
        try:
            # A cut in the middle of a multi-byte character is dropped rather than reported as invalid.
            content = data.decode("utf-8", errors="strict" if size <= max_bytes else "ignore")
        except UnicodeDecodeError:
            raise ToolError(f"file {path!r} is not UTF-8 text") from None
        return FileContent(path=sandbox.relative(target), content=content, size=size, truncated=size > max_bytes)

    @server.tool()
    def file_write(
        path: Annotated[str, Field(description="File relative to the tools root.")],
        content: Annotated[str, Field(description="Text to write, encoded as UTF-8.")],
        overwrite: Annotated[bool, Field(description="Replace an existing file.")] = True,
        create_dirs: Annotated[bool, Field(description="Create missing parent directories.")] = True,
    ) -> FileWritten:
        """Write a UTF-8 text file under the tools root."""
        target = sandbox.resolve(path)
        if target.is_dir():
            raise ToolError(f"path {path!r} is a directory; pass a file path")
        _reject_special_file(target, path)
        if target.exists() and not overwrite:
            raise ToolError(f"file {path!r} already exists; pass overwrite=true to replace it")
        if create_dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
        elif not target.parent.is_dir():
            raise ToolError(f"the parent directory of {path!r} does not exist; pass create_dirs=true")
        data = content.encode("utf-8")
        target.write_bytes(data)
        return FileWritten(path=sandbox.relative(target), bytes_written=len(data))

    @server.tool()
    def file_append_line(
        path: Annotated[str, Field(description="File relative to the tools root; created when missing.")],
        line: Annotated[str, Field(description="One line of text, without line breaks.")],
    ) -> LineAppended:
        """Append one line to a text file under the tools root and return the file's line count."""
        if "\n" in line or "\r" in line:
            raise ToolError("line contains a line break; append one line per call")
        target = sandbox.resolve(path)
        if target.is_dir():
            raise ToolError(f"path {path!r} is a directory; pass a file path")
        _reject_special_file(target, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8") as stream:
            stream.write(line + "\n")
        with target.open("rb") as stream:
            line_count = sum(1 for _ in stream)
        return LineAppended(path=sandbox.relative(target), line_count=line_count)
