"""Fixtures for the UI tests: workflow files on disk and a qasync event loop on the test QApplication."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtWidgets import QApplication

from studio.app.event_loop import close_event_loop, new_event_loop

WriteWorkflow = Callable[..., Path]


def lua_step(step_id: str, source: str, inputs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Return the JSON of a lua_script step."""
    return {"id": step_id, "type": "lua_script", "config": {"source": source, "inputs": inputs or {}}, **extra}


def pipeline_document() -> dict[str, Any]:
    """A lua_script-only workflow with an explicit edge, implied edges and a for_each body."""
    return {
        "schema_version": 1,
        "name": "Squares pipeline",
        "input_schema": {"type": "object", "properties": {"count": {"type": "integer", "default": 3}}},
        "steps": [
            lua_step("numbers", "local t = {} for i = 1, count do t[i] = i end return t", {"count": "{{input.count}}"}),
            {
                "id": "loop",
                "type": "for_each",
                "name": "Per number",
                "config": {
                    "items": "{{steps.numbers.result}}",
                    "steps": [
                        lua_step("square", "return x * x", {"x": "{{item}}"}),
                        lua_step("label", "return 'n' .. v", {"v": "{{steps.square.result}}"}),
                    ],
                },
            },
            lua_step("total", "local s = 0 for _, r in ipairs(rows) do s = s + #r end return s",
                     {"rows": "{{steps.loop.result.items}}"}),
            lua_step("announce", "return 'done'"),
        ],
        "edges": [{"source": "total", "target": "announce"}],
    }


@pytest.fixture
def pipeline() -> dict[str, Any]:
    """A fresh copy of :func:`pipeline_document` that the test may change."""
    return pipeline_document()


@pytest.fixture
def single_step() -> dict[str, Any]:
    """A workflow document with one lua_script step ``a``."""
    return {"schema_version": 1, "name": "One step", "steps": [lua_step("a", "return 1")]}


@pytest.fixture
def write_workflow(tmp_path: Path) -> WriteWorkflow:
    """Write a workflow document (a dict, or raw text) to a file under tmp_path and return its path."""

    def write(document: dict[str, Any] | str, name: str = "test.workflow.json") -> Path:
        path = tmp_path / name
        text = document if isinstance(document, str) else json.dumps(document)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def qasync_loop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    """A qasync event loop on the test QApplication. Drive it with ``run_until_complete``."""
    loop = new_event_loop(qapp)
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        close_event_loop(loop)
        asyncio.set_event_loop(None)
