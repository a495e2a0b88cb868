"""The MCP server catalog: built-in and custom entries, remote transport detection, and migration 0003."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import insert

from studio.mcp.catalog import (
    BUILTIN_ENTRIES,
    add_entry,
    delete_entry,
    detect_remote_transport,
    get_entry,
    list_entries,
)
from studio.mcp.errors import McpConfigError, McpNotFoundError, McpProbeError
from studio.mcp.instances import create_instance, get_instance
from studio.store import Store, open_store
from studio.store import tables as t
from studio.store.database import _alembic_config, create_sqlite_engine
from tests.engine.mcp_fixtures import HttpToolServer


def test_builtin_tool_server_listed(store: Store) -> None:
    entries = list_entries(store)

    assert entries[0].id == "builtin:studio-tools"
    assert entries[0].builtin
    assert entries[0].command == "studio-tools"
    assert get_entry(store, "Studio tools") == BUILTIN_ENTRIES[0]


def test_custom_entries_stdio_and_remote(store: Store) -> None:
    stdio = add_entry(store, "files", "stdio", command="npx", args=["-y", "server-files"], cwd="/tmp")
    remote = add_entry(store, "remote", "http", url="https://mcp.example.test/mcp?region=eu")

    assert [entry.name for entry in list_entries(store)] == ["Studio tools", "files", "remote"]
    assert stdio.args == ("-y", "server-files")
    assert stdio.launch_label == "npx -y server-files"
    assert remote.launch_label == "https://mcp.example.test/mcp"
    assert get_entry(store, remote.id) == remote


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "x", "transport": "websocket", "url": "ws://h"}, "invalid transport 'websocket'"),
        ({"name": "x", "transport": "stdio"}, "has no command"),
        ({"name": "x", "transport": "http", "url": "ftp://h/mcp"}, "needs an http:// or https:// URL"),
        ({"name": "", "transport": "stdio", "command": "a"}, "invalid server name ''"),
        ({"name": "x", "transport": "http", "url": "http://h/mcp", "command": "a"}, "remove them or use stdio"),
        (
            {"name": "x", "transport": "stdio", "command": "npx", "args": ["--api-key", "sk-catalogArg123"]},
            "argument 2 (the value of --api-key) looks like a secret",
        ),
        ({"name": "x", "transport": "http", "url": "https://h/mcp?token=catalogQuery9"}, "query parameter 'token'"),
        ({"name": "x", "transport": "http", "url": "https://u:catalogPass7@h/mcp"}, "the password of the URL"),
    ],
)
def test_invalid_entry_named_in_error(store: Store, fields: dict[str, str], expected: str) -> None:
    name = fields.pop("name")
    transport = fields.pop("transport")

    with pytest.raises(McpConfigError) as raised:
        add_entry(store, name, transport, **fields)  # type: ignore[arg-type]

    assert expected in str(raised.value)


def test_duplicate_entry_name_rejected(store: Store) -> None:
    add_entry(store, "files", "stdio", command="a")

    with pytest.raises(McpConfigError, match="'files' exists already"):
        add_entry(store, "files", "stdio", command="b")


def test_entry_in_use_not_deleted(store: Store) -> None:
    entry = add_entry(store, "files", "stdio", command="a")
    create_instance(store, entry, name="files-1")

    with pytest.raises(McpConfigError, match="used by instances files-1"):
        delete_entry(store, "files")
    with pytest.raises(McpConfigError, match="shipped with the studio"):
        delete_entry(store, "builtin:studio-tools")


def test_unused_entry_deleted(store: Store) -> None:
    add_entry(store, "files", "stdio", command="a")

    delete_entry(store, "files")

    with pytest.raises(McpNotFoundError, match="'files' was not found"):
        get_entry(store, "files")


# -- remote transport detection ---------------------------------------------------------------------


async def test_detect_streamable_http(http_toolserver: HttpToolServer) -> None:
    assert await detect_remote_transport(http_toolserver.url) == "http"


async def test_detect_legacy_sse(sse_echo: str) -> None:
    assert await detect_remote_transport(sse_echo) == "sse"


async def test_detect_html_page(html_server: str) -> None:
    with pytest.raises(McpProbeError) as raised:
        await detect_remote_transport(f"{html_server}/mcp")

    assert "returned an HTML page" in str(raised.value)
    assert "/mcp" in str(raised.value)


async def test_detect_401_asks_for_binding(token_echo: str) -> None:
    with pytest.raises(McpProbeError) as raised:
        await detect_remote_transport(token_echo)

    assert "HTTP 401" in str(raised.value)
    assert "Authorization header" in str(raised.value)


async def test_detect_with_token_header(token_echo: str) -> None:
    assert await detect_remote_transport(token_echo, {"Authorization": "Bearer echo-token-5521"}) == "http"


async def test_detect_refused_port(unused_tcp_port: int) -> None:
    with pytest.raises(McpProbeError, match="could not connect"):
        await detect_remote_transport(f"http://127.0.0.1:{unused_tcp_port}/mcp")


# -- migration ----------------------------------------------------------------------------------------


def test_migration_moves_old_instances(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = create_sqlite_engine(path)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
    engine.dispose()
    old = open_store_at_0002(path)
    with old.engine.begin() as connection:
        for name, command_name, env in (("tools", "studio-tools", {}), ("git", "mcp-server-git", {"GIT_DIR": "/r"})):
            connection.execute(
                insert(t.mcp_instances).values(
                    id=f"id-{name}",
                    workspace_id=old.workspace_id,
                    project_id=old.project_id,
                    name=name,
                    transport="stdio",
                    command=command_name,
                    args=["--verbose"],
                    env=env,
                    created_at=1.0,
                )
            )
    old.close()

    store = open_store(path)
    try:
        git = get_instance(store, "git")
        tools = get_instance(store, "tools")
        entry = get_entry(store, str(git.catalog_entry_id))
    finally:
        store.close()

    assert tools.catalog_entry_id == "builtin:studio-tools"
    assert entry.command == "mcp-server-git"
    assert entry.args == ("--verbose",)
    assert git.profile().env == {"GIT_DIR": "/r"}
    assert git.default_profile == "default"
    assert git.args == ("--verbose",)


def open_store_at_0002(path: Path) -> Store:
    """A Store on a database left at revision 0002 (the Store class itself does not migrate)."""
    return Store(create_sqlite_engine(path), path)
