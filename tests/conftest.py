"""Shared fixtures: a store on a temporary SQLite file, engines with a shared tool server, workflow builders."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

# Qt aborts the process when it has no display; the README's test command sets this too, but a
# bare `pytest` run must not crash either. QT_API makes qasync pick PySide6.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

from studio.engine import Engine, EventType, ExecutorServices, RunEvent
from studio.model.document import workflow_from_data
from studio.model.workflow import Workflow
from studio.store import Store, open_store

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLS_URL = "stdio:studio-tools"
"""server_url of the studio's own MCP tool server; the engine starts it with the running interpreter."""


# -- workflow builders ------------------------------------------------------------------------------


def lua_step(step_id: str, source: str, inputs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Return the JSON of a lua_script step; ``extra`` adds step fields such as ``retry`` or ``timeout_s``."""
    return {"id": step_id, "type": "lua_script", "config": {"source": source, "inputs": inputs or {}}, **extra}


def mcp_step(
    step_id: str, tool: str, arguments: dict[str, Any] | None = None, *, server: str = TOOLS_URL, **extra: Any
) -> dict[str, Any]:
    """Return the JSON of an mcp_call step against ``server`` (the studio tool server by default)."""
    config = {"server_url": server, "tool": tool, "arguments": arguments or {}}
    return {"id": step_id, "type": "mcp_call", "config": config, **extra}


def append_step(step_id: str, path: str, line: str | None = None, **extra: Any) -> dict[str, Any]:
    """Return an mcp_call step that appends ``line`` (default: the step id) to ``path`` under the tools root."""
    return mcp_step(step_id, "file_append_line", {"path": path, "line": line or step_id}, **extra)


def for_each_step(step_id: str, items: Any, body: list[dict[str, Any]], **config: Any) -> dict[str, Any]:
    """Return the JSON of a for_each step; ``config`` adds keys such as ``max_parallelism`` or ``edges``."""
    return {"id": step_id, "type": "for_each", "config": {"items": items, "steps": body, **config}}


def build_workflow(
    steps: list[dict[str, Any]],
    edges: list[tuple[str, str]] | None = None,
    *,
    inputs: dict[str, Any] | None = None,
    name: str = "Test workflow",
) -> Workflow:
    """Build a validated Workflow from step dicts; ``inputs`` are input_schema properties."""
    document = workflow_document(steps, edges, inputs=inputs, name=name)
    return workflow_from_data(document, name)


def workflow_document(
    steps: list[dict[str, Any]],
    edges: list[tuple[str, str]] | None = None,
    *,
    inputs: dict[str, Any] | None = None,
    name: str = "Test workflow",
) -> dict[str, Any]:
    """Return the JSON document of a workflow with a fresh id."""
    return {
        "schema_version": 1,
        "id": str(uuid.uuid4()),
        "name": name,
        "input_schema": {"type": "object", "properties": inputs or {}},
        "steps": steps,
        "edges": [{"source": source, "target": target} for source, target in edges or []],
    }


def count_lines(path: Path) -> dict[str, int]:
    """Count each distinct line of a text file (an empty dict if the file does not exist)."""
    counts: dict[str, int] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            counts[line] = counts.get(line, 0) + 1
    return counts


# -- events -----------------------------------------------------------------------------------------


@dataclass
class EventLog:
    """Every event an engine announced, plus a way to await one that matches a condition."""

    events: list[RunEvent] = field(default_factory=list)
    _watchers: list[tuple[Callable[[RunEvent], bool], asyncio.Future[RunEvent]]] = field(default_factory=list)

    def __call__(self, event: RunEvent) -> None:
        self.events.append(event)
        for watcher in list(self._watchers):
            condition, future = watcher
            if not future.done() and condition(event):
                future.set_result(event)
                self._watchers.remove(watcher)

    async def wait_for(
        self, condition: Callable[[RunEvent], bool], *, timeout_s: float = 20.0, past: bool = True
    ) -> RunEvent:
        """Return the first event (already seen if ``past``) that matches ``condition``."""
        if past:
            for event in self.events:
                if condition(event):
                    return event
        future: asyncio.Future[RunEvent] = asyncio.get_running_loop().create_future()
        self._watchers.append((condition, future))
        return await asyncio.wait_for(future, timeout_s)

    async def wait_type(self, event_type: EventType, step_key: str | None = None, **kwargs: Any) -> RunEvent:
        return await self.wait_for(
            lambda event: event.type == event_type and (step_key is None or event.step_key == step_key), **kwargs
        )

    def of_type(self, event_type: EventType, run_id: str | None = None) -> list[RunEvent]:
        return [e for e in self.events if e.type == event_type and (run_id is None or e.run_id == run_id)]


# -- store and engine -------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated store on a fresh SQLite file ``tmp_path / "studio.db"``."""
    opened = open_store(tmp_path / "studio.db")
    yield opened
    opened.close()


class SharedServices(ExecutorServices):
    """Executor services that outlive one engine, so tests of a module share one tool server process."""

    async def aclose(self) -> None:
        """Keep the MCP sessions open; :meth:`close_shared` ends them at the end of the module."""

    async def close_shared(self) -> None:
        await super().aclose()


@pytest.fixture(scope="module")
def tools_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root directory of the tool server's file tools, shared by the tests of a module."""
    return tmp_path_factory.mktemp("tools-root")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_services(tools_root: Path) -> AsyncIterator[SharedServices]:
    """Executor services whose MCP sessions live for the whole module (one tool server start)."""
    services = SharedServices(environ={**os.environ, "STUDIO_TOOLS_ROOT": str(tools_root)})
    yield services
    await services.close_shared()


@pytest.fixture
def tools_file(tools_root: Path) -> tuple[str, Path]:
    """A file name unique to the test under the shared tools root: (path for the tools, absolute path)."""
    name = f"{uuid.uuid4().hex}.txt"
    return name, tools_root / name


EngineFactory = Callable[..., Awaitable[tuple[Engine, EventLog]]]


@pytest_asyncio.fixture(loop_scope="module")
async def make_engine(store: Store, shared_services: SharedServices) -> AsyncIterator[EngineFactory]:
    """Create engines on ``store`` with the module's shared services, each with an EventLog listening.

    Engines are closed after the test; their runs stay resumable, as after a restart.
    """
    engines: list[Engine] = []

    async def create(**options: Any) -> tuple[Engine, EventLog]:
        engine = Engine(store, services=options.pop("services", shared_services), **options)
        log = EventLog()
        engine.add_listener(log)
        engines.append(engine)
        return engine, log

    yield create
    for engine in engines:
        await engine.aclose()


@pytest_asyncio.fixture(loop_scope="module")
async def engine(make_engine: EngineFactory) -> tuple[Engine, EventLog]:
    """An engine on the test's store, sharing the module's tool server, and the log of its events."""
    return await make_engine()


# -- command line -----------------------------------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for ``python -m studio`` subprocesses: this repository importable, no user database."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("STUDIO_", "OPENAI_", "OLLAMA_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


def run_cli(
    db: Path, *args: str, env: dict[str, str] | None = None, timeout_s: float = 60.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m studio --db DB ARGS`` to the end and return its output."""
    return subprocess.run(
        [sys.executable, "-m", "studio", "--db", str(db), *args],
        capture_output=True,
        text=True,
        env=env if env is not None else cli_env(),
        timeout=timeout_s,
        cwd=cwd or REPO_ROOT,
        check=False,
    )
