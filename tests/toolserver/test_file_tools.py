"""Tests of the tool server's file tools: reads and writes inside the root, and rejected escapes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mcp import Client

from studio.toolserver.file_tools import FileSandbox
from tests.engine.mcp_fixtures import call_error, call_ok, inprocess_tools, tools_root

__all__ = ["inprocess_tools", "tools_root"]


async def test_write_read_roundtrip(inprocess_tools: Client, tools_root: Path) -> None:
    written = await call_ok(inprocess_tools, "file_write", {"path": "notes/today.md", "content": "héllo\n"})
    read = await call_ok(inprocess_tools, "file_read", {"path": "notes/today.md"})

    assert written == {"path": "notes/today.md", "bytes_written": 7}
    assert read == {"path": "notes/today.md", "content": "héllo\n", "size": 7, "truncated": False}
    assert (tools_root / "notes/today.md").read_text(encoding="utf-8") == "héllo\n"


async def test_read_truncates(inprocess_tools: Client, tools_root: Path) -> None:
    (tools_root / "long.txt").write_text("abcdef")

    read = await call_ok(inprocess_tools, "file_read", {"path": "long.txt", "max_bytes": 4})

    assert read["content"] == "abcd"
    assert read["truncated"] is True
    assert read["size"] == 6


async def test_write_refuses_overwrite(inprocess_tools: Client, tools_root: Path) -> None:
    (tools_root / "keep.txt").write_text("old")

    message = await call_error(
        inprocess_tools, "file_write", {"path": "keep.txt", "content": "new", "overwrite": False}
    )

    assert "already exists; pass overwrite=true" in message
    assert (tools_root / "keep.txt").read_text() == "old"


async def test_append_line_counts(inprocess_tools: Client, tools_root: Path) -> None:
    counts = [
        (await call_ok(inprocess_tools, "file_append_line", {"path": "log/runs.txt", "line": f"run {i}"}))["line_count"]
        for i in range(3)
    ]
    multi = await call_error(inprocess_tools, "file_append_line", {"path": "log/runs.txt", "line": "a\nb"})

    assert counts == [1, 2, 3]
    assert (tools_root / "log/runs.txt").read_text() == "run 0\nrun 1\nrun 2\n"
    assert "line contains a line break" in multi


async def test_files_list_filters(inprocess_tools: Client, tools_root: Path) -> None:
    (tools_root / "a.md").write_text("a")
    (tools_root / "b.txt").write_text("bb")
    (tools_root / "sub").mkdir()
    (tools_root / "sub/c.md").write_text("ccc")

    flat = await call_ok(inprocess_tools, "files_list", {})
    markdown = await call_ok(inprocess_tools, "files_list", {"pattern": "*.md", "recursive": True})

    assert [entry["path"] for entry in flat["entries"]] == ["a.md", "b.txt", "sub"]
    assert flat["entries"][2]["type"] == "directory"
    assert markdown["entries"] == [
        {"path": "a.md", "type": "file", "size": 1},
        {"path": "sub/c.md", "type": "file", "size": 3},
    ]


@pytest.mark.parametrize("path", ["../outside.txt", "sub/../../outside.txt", "/etc/passwd", "escape-link/x"])
async def test_escapes_rejected(inprocess_tools: Client, tools_root: Path, path: str) -> None:
    (tools_root / "sub").mkdir()
    (tools_root / "escape-link").symlink_to(tools_root.parent)

    read = await call_error(inprocess_tools, "file_read", {"path": path})
    write = await call_error(inprocess_tools, "file_write", {"path": path, "content": "x"})

    for message in (read, write):
        assert "outside the tools root" in message or "is absolute" in message
    assert not (tools_root.parent / "outside.txt").exists()


async def test_symlinked_file_rejected(inprocess_tools: Client, tools_root: Path) -> None:
    secret = tools_root.parent / "secret.txt"
    secret.write_text("TOP-SECRET")
    (tools_root / "innocent.txt").symlink_to(secret)

    message = await call_error(inprocess_tools, "file_read", {"path": "innocent.txt"})
    listing = await call_ok(inprocess_tools, "files_list", {})

    assert "outside the tools root" in message
    assert "TOP-SECRET" not in message
    assert listing["entries"] == []


async def test_no_root_configured() -> None:
    sandbox = FileSandbox(None)

    with pytest.raises(Exception, match="--root DIR or set STUDIO_TOOLS_ROOT"):
        sandbox.resolve("a.txt")


def test_missing_root_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not an existing directory"):
        FileSandbox(os.fspath(tmp_path / "nope"))
