"""Secrets around stdio MCP servers: what a server process receives, and what its stderr may reveal."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from pydantic import JsonValue

from studio.engine import Engine, ExecutorServices
from studio.secrets import BACKEND_VARIABLE, FILE_VARIABLE, PASSPHRASE_VARIABLE
from studio.store import Store
from tests.conftest import build_workflow, store

__all__ = ["store"]

ECHO_SERVER = str(Path(__file__).resolve().parents[1] / "mcp" / "echo_server.py")
PASSPHRASE = "vault-canary-passphrase-Qw7"


@pytest_asyncio.fixture
async def vault_engine(store: Store, tmp_path: Path) -> AsyncIterator[Engine]:
    """An engine whose environment selects the encrypted secrets file with a passphrase."""
    environ = {
        **os.environ,
        BACKEND_VARIABLE: "file",
        FILE_VARIABLE: str(tmp_path / "vault" / "secrets.cfg"),
        PASSPHRASE_VARIABLE: PASSPHRASE,
        "STUDIO_TOOLS_ROOT": str(tmp_path),
    }
    engine = Engine(store, services=ExecutorServices(store, environ=environ))
    try:
        yield engine
    finally:
        await engine.aclose()


async def server_env_value(engine: Engine, name: str) -> JsonValue:
    """Run one step that requests an env variable from a stdio server given by server_url; return its result."""
    config = {"server_url": f"stdio:{sys.executable} {ECHO_SERVER}", "tool": "env_value", "arguments": {"name": name}}
    run_id = await engine.run_workflow(build_workflow([{"id": "read", "type": "mcp_call", "config": config}]))
    summary = await engine.wait(run_id)
    assert summary.status == "completed", summary.error
    return engine.store.step_runs(run_id)["read"].result


async def test_server_url_gets_no_vault_settings(vault_engine: Engine) -> None:
    assert await server_env_value(vault_engine, PASSPHRASE_VARIABLE) == {"result": ""}
    assert await server_env_value(vault_engine, FILE_VARIABLE) == {"result": ""}
    assert await server_env_value(vault_engine, BACKEND_VARIABLE) == {"result": ""}


async def test_server_url_keeps_tools_root(vault_engine: Engine, tmp_path: Path) -> None:
    assert await server_env_value(vault_engine, "STUDIO_TOOLS_ROOT") == {"result": str(tmp_path)}
