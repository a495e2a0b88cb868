"""Fixtures for the MCP catalog and instance tests: an encrypted-file vault and loopback MCP servers."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from studio.secrets import SecretVault, encrypted_file_vault
from tests.engine.mcp_fixtures import EVERYTHING_ENTRY, html_server, http_toolserver, tools_root  # noqa: F401
from tests.secrets.keyring_backends import PASSPHRASE

ECHO_SERVER = Path(__file__).with_name("echo_server.py")


@pytest.fixture(scope="module")
def file_vault(tmp_path_factory: pytest.TempPathFactory) -> SecretVault:
    """The passphrase-encrypted file vault of the 'local' workspace, shared by a module (unlocking takes seconds)."""
    path = tmp_path_factory.mktemp("vault") / "secrets.cfg"
    return encrypted_file_vault("local", path, PASSPHRASE)


@pytest.fixture
def echo_command() -> tuple[str, list[str]]:
    """Command and arguments that start the echo server over stdio."""
    return sys.executable, [str(ECHO_SERVER)]


async def start_echo(*options: str, env: dict[str, str] | None = None) -> tuple[str, asyncio.subprocess.Process]:
    """Start the echo server over HTTP or SSE and return its URL and process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ECHO_SERVER), *options, stdout=asyncio.subprocess.PIPE, env=env
    )
    assert process.stdout is not None
    async with asyncio.timeout(20):
        line = await process.stdout.readline()
    url = line.decode().strip()
    assert url.startswith("http://127.0.0.1:"), f"unexpected first line from the echo server: {line!r}"
    return url, process


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
    with contextlib.suppress(ProcessLookupError):
        await process.wait()


@pytest.fixture
async def sse_echo() -> AsyncIterator[str]:
    """URL of the echo server on the legacy SSE transport."""
    url, process = await start_echo("--sse")
    try:
        yield url
    finally:
        await stop(process)


@pytest.fixture
async def token_echo() -> AsyncIterator[str]:
    """URL of the echo server on streamable HTTP that requires 'Authorization: Bearer echo-token-5521'."""
    import os

    url, process = await start_echo("--http", env={**os.environ, "ECHO_TOKEN": "echo-token-5521"})
    try:
        yield url
    finally:
        await stop(process)


@pytest.fixture
def everything_entry() -> Iterator[Path]:
    if not EVERYTHING_ENTRY.exists():
        pytest.fail(f"{EVERYTHING_ENTRY} is missing; run tools/bootstrap-test-deps.sh")
    yield EVERYTHING_ENTRY
