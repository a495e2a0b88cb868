"""Helpers for the server-everything tests: its instance in the catalog, engines on it, and its processes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from studio.engine import Engine, ExecutorServices
from studio.mcp.catalog import add_entry
from studio.mcp.instances import create_instance
from studio.store import Store
from tests.conftest import EventLog
from tests.engine.mcp_fixtures import EVERYTHING_ENTRY, MISSING_DEPS_HINT
from tests.fakes.openai_server import FakeOpenAIServer, openai_server

SAMPLING_MODEL = "sampler-model"
FAKE_KEY = "sk-sampling-test-key"


@pytest.fixture
def llm_server() -> Iterator[FakeOpenAIServer]:
    """The loopback OpenAI server that serves sampling as the default LLM endpoint."""
    with openai_server(api_key=FAKE_KEY) as server:
        yield server


@dataclass
class Studio:
    """An engine whose default LLM endpoint is the fake server, with instances of server-everything."""

    engine: Engine
    log: EventLog
    store: Store
    services: ExecutorServices
    sampling_instance: str
    plain_instance: str


@pytest_asyncio.fixture
async def studio(store: Store, llm_server: FakeOpenAIServer, tmp_path: Path) -> AsyncIterator[Studio]:
    if not EVERYTHING_ENTRY.exists():
        pytest.fail(f"{EVERYTHING_ENTRY} is missing; {MISSING_DEPS_HINT}")
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "OPENAI_BASE_URL": llm_server.base_url,
        "OPENAI_API_KEY": FAKE_KEY,
        "STUDIO_SAMPLING_MODEL": SAMPLING_MODEL,
    }
    entry = add_entry(store, "everything", "stdio", command="node", args=[str(EVERYTHING_ENTRY), "stdio"])
    sampling = create_instance(store, entry, name="everything-sampling", allow_sampling=True)
    plain = create_instance(store, entry, name="everything-plain")
    services = ExecutorServices(store, environ=environ, project_root=tmp_path)
    engine = Engine(store, services=services)
    log = EventLog()
    engine.add_listener(log)
    try:
        yield Studio(engine, log, store, services, sampling.id, plain.id)
    finally:
        await engine.aclose()


def everything_processes() -> list[int]:
    """Pids of the server-everything processes this test process started and that still run."""
    pids: list[int] = []
    own = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        state = next((line.split()[1] for line in status.splitlines() if line.startswith("State:")), "")
        if parent == str(own) and state != "Z" and str(EVERYTHING_ENTRY).encode() in command:
            pids.append(int(entry.name))
    return sorted(pids)


def everything_step(
    step_id: str, tool: str, arguments: dict[str, object], instance: str, **extra: object
) -> dict[str, object]:
    """Return an mcp_call step on a server-everything instance."""
    config = {"instance_id": instance, "tool": tool, "arguments": arguments}
    return {"id": step_id, "type": "mcp_call", "config": config, **extra}
