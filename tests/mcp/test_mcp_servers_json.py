"""mcpServers files of Claude Desktop, Cursor and VS Code: import, export, round trips, secrets as bindings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from studio.mcp.errors import McpConfigError
from studio.mcp.instances import Binding, get_instance
from studio.mcp.mcp_servers_json import detect_format, export_servers, import_servers, parse_servers
from studio.mcp.resolve import spec_for_instance
from studio.secrets import SecretVault, list_connections
from studio.store import Store, open_store

GITHUB_TOKEN = "ghp_importTestToken1234567890abcd"
REMOTE_TOKEN = "remote-token-Jq82kLm"


def claude_document() -> dict[str, Any]:
    return {
        "mcpServers": {
            "github": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-github"],
                "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": GITHUB_TOKEN, "GITHUB_HOST": "github.example.test"},
            },
            "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]},
        }
    }


def cursor_document() -> dict[str, Any]:
    return {
        "mcpServers": {
            "files": {"command": "npx", "args": ["-y", "server-files", "/data"], "env": {"LOG_LEVEL": "debug"}},
            "remote": {
                "url": "https://mcp.example.test/mcp",
                "headers": {"Authorization": f"Bearer {REMOTE_TOKEN}", "X-Region": "eu"},
            },
            "legacy": {"url": "https://old.example.test/sse"},
        }
    }


def vscode_document() -> dict[str, Any]:
    return {
        "inputs": [{"type": "promptString", "id": "perplexity-key", "description": "API key", "password": True}],
        "servers": {
            "perplexity": {
                "type": "stdio",
                "command": "npx",
                "args": ["-y", "server-perplexity-ask"],
                "env": {"PERPLEXITY_API_KEY": "${input:perplexity-key}"},
            },
            "context": {"type": "http", "url": "https://context.example.test/mcp"},
            "events": {"type": "sse", "url": "https://events.example.test/stream"},
        },
    }


def test_detect_format() -> None:
    assert detect_format(claude_document()) == "claude"
    assert detect_format(cursor_document()) == "cursor"
    assert detect_format(vscode_document()) == "vscode"
    with pytest.raises(McpConfigError, match="no 'mcpServers' object"):
        detect_format({"servers": []})


def test_detect_format_skips_empty_servers_object() -> None:
    document = {"servers": {}, "mcpServers": {"time": {"command": "mcp-server-time"}}}

    assert detect_format(document) == "claude"
    assert [server.name for server in parse_servers(document)] == ["time"]


def test_parse_keeps_secrets_apart() -> None:
    github, time_server = parse_servers(claude_document())
    files, remote, legacy = parse_servers(cursor_document())
    perplexity, context, events = parse_servers(vscode_document())

    assert github.env == {"GITHUB_HOST": "github.example.test"}
    assert github.secret_env == {"GITHUB_PERSONAL_ACCESS_TOKEN": GITHUB_TOKEN}
    assert time_server.secret_env == {}
    assert files.env == {"LOG_LEVEL": "debug"}
    assert remote.transport == "http"
    assert remote.headers == {"X-Region": "eu"}
    assert remote.secret_headers == {"Authorization": f"Bearer {REMOTE_TOKEN}"}
    assert legacy.transport == "sse"
    assert perplexity.secret_env == {"PERPLEXITY_API_KEY": None}
    assert context.transport == "http"
    assert events.transport == "sse"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"mcpServers": {"a": []}}, "server 'a' must be a JSON object"),
        ({"mcpServers": {"a": {"args": []}}}, "server 'a' has neither 'command' nor 'url'"),
        ({"mcpServers": {"a": {"command": "x", "args": "y"}}}, "'args' of server 'a' must be a list"),
        ({"mcpServers": {"a": {"command": "x", "env": {"K": ["v"]}}}}, "'env' of server 'a' must be an object"),
        ({"servers": {"a": {"type": "ws", "url": "ws://x"}}}, "server 'a' has unknown type 'ws'"),
    ],
)
def test_invalid_file_named(document: dict[str, Any], expected: str) -> None:
    with pytest.raises(McpConfigError) as raised:
        parse_servers(document)

    assert expected in str(raised.value)


def test_import_secret_becomes_binding(store: Store, file_vault: SecretVault) -> None:
    report = import_servers(store, claude_document(), vault=file_vault)

    github = get_instance(store, "github")
    spec = spec_for_instance(store, "github", vault=file_vault)
    connection = list_connections(store)[0]

    assert [i.name for i in report.instances] == ["github", "time"]
    assert report.connections == ["github GITHUB_PERSONAL_ACCESS_TOKEN"]
    assert github.profile().env == {"GITHUB_HOST": "github.example.test"}
    assert github.bindings == (Binding("env", "GITHUB_PERSONAL_ACCESS_TOKEN", connection.id),)
    assert spec.env is not None and spec.env["GITHUB_PERSONAL_ACCESS_TOKEN"] == GITHUB_TOKEN
    assert GITHUB_TOKEN.encode() not in Path(str(store.path)).read_bytes()


def test_import_bearer_header(store: Store, file_vault: SecretVault) -> None:
    import_servers(store, cursor_document(), vault=file_vault)

    spec = spec_for_instance(store, "remote", vault=file_vault)
    connection = list_connections(store)[0]

    assert connection.kind == "bearer"
    assert spec.headers == {"X-Region": "eu", "Authorization": f"Bearer {REMOTE_TOKEN}"}
    assert REMOTE_TOKEN.encode() not in Path(str(store.path)).read_bytes()


def test_import_placeholder_left_unbound(store: Store) -> None:
    report = import_servers(store, vscode_document())

    assert report.unbound == ["perplexity: env PERPLEXITY_API_KEY"]
    assert get_instance(store, "perplexity").bindings == (Binding("env", "PERPLEXITY_API_KEY", None),)
    assert list_connections(store) == []


def test_import_secret_without_vault_rejected(store: Store) -> None:
    with pytest.raises(McpConfigError) as raised:
        import_servers(store, claude_document())

    assert "servers github contain secret values" in str(raised.value)
    assert GITHUB_TOKEN not in str(raised.value)


def test_import_skips_existing_name(store: Store) -> None:
    import_servers(store, vscode_document())

    report = import_servers(store, vscode_document())

    assert report.instances == []
    assert report.skipped[0] == "perplexity: an instance with this name exists already"


def test_export_writes_no_secret(store: Store, file_vault: SecretVault) -> None:
    import_servers(store, claude_document(), vault=file_vault)
    import_servers(store, {"mcpServers": cursor_document()["mcpServers"]}, vault=file_vault)

    for file_format in ("claude", "cursor", "vscode"):
        text = json.dumps(export_servers(store, file_format).document)
        assert GITHUB_TOKEN not in text, file_format
        assert REMOTE_TOKEN not in text, file_format


def test_export_placeholders_per_client(store: Store, file_vault: SecretVault) -> None:
    import_servers(store, claude_document(), vault=file_vault)

    claude = export_servers(store, "claude")
    cursor = export_servers(store, "cursor").document["mcpServers"]
    vscode = export_servers(store, "vscode").document

    assert claude.document["mcpServers"]["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"] == ""  # type: ignore[index, call-overload]
    assert "set env GITHUB_PERSONAL_ACCESS_TOKEN by hand" in claude.notes[0]
    assert cursor["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"] == "${env:GITHUB_PERSONAL_ACCESS_TOKEN}"  # type: ignore[index, call-overload]
    assert vscode["servers"]["github"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"] == (  # type: ignore[index, call-overload]
        "${input:github-github-personal-access-token}"
    )
    assert vscode["inputs"][0]["password"] is True  # type: ignore[index, call-overload]
    assert vscode["servers"]["github"]["type"] == "stdio"  # type: ignore[index, call-overload]


def test_claude_export_leaves_out_remote(store: Store, file_vault: SecretVault) -> None:
    import_servers(store, cursor_document(), vault=file_vault)

    result = export_servers(store, "claude")

    assert list(result.document["mcpServers"]) == ["files"]  # type: ignore[call-overload]
    assert any("legacy: left out" in note for note in result.notes)


@pytest.mark.parametrize(
    ("file_format", "document"),
    [("claude", claude_document), ("cursor", cursor_document), ("vscode", vscode_document)],
)
def test_round_trip(tmp_path: Path, file_vault: SecretVault, file_format: str, document: Any) -> None:
    first = open_store(tmp_path / "first.db")
    second = open_store(tmp_path / "second.db")
    try:
        import_servers(first, document(), vault=file_vault, file_format=file_format)
        exported = export_servers(first, file_format).document
        import_servers(second, exported, file_format=file_format)
        again = export_servers(second, file_format).document
        names = {instance.name for instance in _instances(second)}
    finally:
        first.close()
        second.close()

    assert again == exported
    assert names == set(document()["servers" if file_format == "vscode" else "mcpServers"])


def _instances(store: Store) -> list[Any]:
    from studio.mcp.instances import list_instances

    return list_instances(store)


def test_import_skips_secret_in_arguments_or_url(store: Store, file_vault: SecretVault) -> None:
    document = {
        "mcpServers": {
            "smithery": {"command": "npx", "args": ["-y", "@smithery/cli", "run", "x", "--key", "sk-argSecret4455"]},
            "query": {"url": "https://mcp.example.test/sse?token=querySecret8877"},
            "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]},
        }
    }

    report = import_servers(store, document, vault=file_vault)
    exported = json.dumps(export_servers(store, "cursor").document)

    assert [instance.name for instance in report.instances] == ["time"]
    assert report.skipped == [
        "smithery: argument 6 (the value of --key) looks like a secret, and arguments are stored in plain text; "
        "pass it in an env variable and import again",
        "query: query parameter 'token' looks like a secret, and URLs are stored in plain text; "
        "pass it in a header and import again",
    ]
    assert "argSecret4455" not in exported
    assert "querySecret8877" not in exported
    assert b"argSecret4455" not in Path(str(store.path)).read_bytes()


def test_invalid_server_leaves_no_connection(store: Store, file_vault: SecretVault) -> None:
    document = {
        "mcpServers": {
            "broken": {"command": "srv", "env": {"1BAD": "x", "API_KEY": "sk-orphanSecret5566"}},
            "time": {"command": "mcp-server-time"},
        }
    }

    report = import_servers(store, document, vault=file_vault)

    assert [instance.name for instance in report.instances] == ["time"]
    assert report.skipped == [
        "broken: invalid environment variable name '1BAD' in profile 'default'; "
        "use letters, digits and '_', not starting with a digit"
    ]
    assert report.connections == []
    assert list_connections(store) == []


def test_export_placeholders_are_unique(store: Store, file_vault: SecretVault) -> None:
    document = {
        "mcpServers": {
            "a-b": {"command": "srv1", "env": {"C_TOKEN": "token-one-111"}},
            "a": {"command": "srv2", "env": {"B_C_TOKEN": "token-two-222"}},
            "one": {"url": "https://one.example.test/mcp", "headers": {"x-api-key": "sk-headerOne1"}},
            "one-x": {"url": "https://two.example.test/mcp", "headers": {"api-key": "sk-headerTwo2"}},
        }
    }
    import_servers(store, document, vault=file_vault)

    vscode = export_servers(store, "vscode").document
    cursor = export_servers(store, "cursor").document
    input_ids = [item["id"] for item in vscode["inputs"]]  # type: ignore[index, union-attr]
    references = [
        server["env"]["C_TOKEN"] if name == "a-b" else server["env"]["B_C_TOKEN"]  # type: ignore[index]
        for name, server in vscode["servers"].items()  # type: ignore[union-attr]
        if name in ("a", "a-b")
    ]
    header_names = [
        next(iter(server["headers"].values()))  # type: ignore[index]
        for name, server in cursor["mcpServers"].items()  # type: ignore[union-attr]
        if name in ("one", "one-x")
    ]

    assert len(set(input_ids)) == len(input_ids) == 4
    assert len(set(references)) == 2
    assert len(set(header_names)) == 2


def test_placeholder_inside_value_needs_binding() -> None:
    document = {
        "servers": {
            "db": {
                "type": "stdio",
                "command": "srv",
                "env": {"DSN": "postgres://app:${input:db-password}@db/app", "MODE": "fast"},
            },
            "web": {"type": "http", "url": "https://h/mcp", "headers": {"X-Org": "org-${env:ORG_ID}"}},
        }
    }

    database, web = parse_servers(document)

    assert database.env == {"MODE": "fast"}
    assert database.secret_env == {"DSN": None}
    assert web.headers == {}
    assert web.secret_headers == {"X-Org": None}
