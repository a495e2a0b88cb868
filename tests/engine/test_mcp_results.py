"""Tests of how tool results become ToolResult values, and of the stderr ring buffer."""

from __future__ import annotations

import subprocess
import sys

from pydantic import JsonValue

from studio.engine.executors.mcp_model import error_text, result_value
from studio.engine.executors.mcp_stderr import MAX_LINE_CHARS, MAX_LINES, StderrRing


def text(value: str) -> JsonValue:
    return {"type": "text", "text": value}


def test_structured_content_wins() -> None:
    assert result_value({"a": 1}, [text('{"a": 2}')]) == {"a": 1}


def test_single_json_object_text_decoded() -> None:
    assert result_value(None, [text('{"rows": [1, 2]}')]) == {"rows": [1, 2]}
    assert result_value(None, [text("[1, 2]")]) == [1, 2]


def test_scalar_json_text_stays_text() -> None:
    assert result_value(None, [text("42")]) == "42"
    assert result_value(None, [text("true")]) == "true"


def test_broken_json_text_stays_text() -> None:
    assert result_value(None, [text("{not json")]) == "{not json"


def test_text_blocks_joined() -> None:
    assert result_value(None, [text("first"), text("second")]) == "first\nsecond"


def test_no_content_is_none() -> None:
    assert result_value(None, []) is None


def test_image_described_without_data() -> None:
    image: JsonValue = {"type": "image", "data": "A" * 400, "mimeType": "image/png"}

    value = result_value(None, [image])

    assert value == {"type": "image", "mime_type": "image/png", "approx_bytes": 300}


def test_embedded_resource_described() -> None:
    resource: JsonValue = {
        "type": "resource",
        "resource": {"uri": "file:///notes.md", "mimeType": "text/markdown", "text": "# Notes"},
    }

    value = result_value(None, [text("see"), resource])

    assert value == [
        {"type": "text", "text": "see"},
        {"type": "resource", "uri": "file:///notes.md", "mime_type": "text/markdown", "text": "# Notes"},
    ]


def test_error_text_joins_texts() -> None:
    assert error_text([text("bad"), text("input")]) == "bad\ninput"
    assert error_text([]) == "(the tool returned an error without a message)"


async def test_stderr_ring_keeps_last_lines() -> None:
    ring = StderrRing("test")
    script = (
        "import sys\n"
        f"for i in range({MAX_LINES + 50}): print('line', i, file=sys.stderr)\n"
        f"print('x' * {MAX_LINE_CHARS + 10}, file=sys.stderr)"
    )
    subprocess.run([sys.executable, "-c", script], stderr=ring.errlog, check=True)
    ring.release_writer()

    closed = await ring.wait_closed(5.0)
    lines = ring.tail(MAX_LINES + 100).splitlines()

    assert closed
    assert ring.exited
    assert len(lines) == MAX_LINES
    assert lines[-2] == f"line {MAX_LINES + 49}"
    assert lines[-1].endswith("[line cut]")
    assert ring.tail(1) == lines[-1]
    assert ring.tail(0) == ""
