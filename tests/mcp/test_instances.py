"""MCP instances: profiles, connection bindings resolved from a real encrypted-file vault, and live sessions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from studio.engine.executors.mcp import McpConnectError
from studio.mcp.catalog import add_entry
from studio.mcp.errors import McpConfigError, McpNotFoundError
from studio.mcp.instances import (
    Binding,
    Profile,
    Timeouts,
    bind,
    create_instance,
    delete_instance,
    get_instance,
    list_instances,
    remove_profile,
    set_options,
    set_profile,
)
from studio.mcp.resolve import spec_for_instance
from studio.mcp.session import InstanceSession
from studio.mcp.tool_cache import cached_tools, tool_catalog, tool_entries
from studio.secrets import BACKEND_VARIABLE, FILE_VARIABLE, PASSPHRASE_VARIABLE, SecretVault, create_connection
from studio.store import Store
from tests.secrets.keyring_backends import PASSPHRASE

SECRET = "sk-instance-test-7Qw2Lp9Zr4"


def echo_instance(store: Store, echo_command: tuple[str, list[str]], **options: object) -> str:
    command, args = echo_command
    entry = add_entry(store, "echo", "stdio", command=command, args=args)
    return create_instance(store, entry, name="echo", **options).id  # type: ignore[arg-type]


def test_instance_gets_default_profile(store: Store, echo_command: tuple[str, list[str]]) -> None:
    instance = get_instance(store, echo_instance(store, echo_command))

    assert list(instance.profiles) == ["default"]
    assert instance.default_profile == "default"
    assert instance.timeouts == Timeouts()
    assert not instance.allow_sampling
    assert [i.name for i in list_instances(store)] == ["echo"]


def test_profiles_select_env_and_args(store: Store, echo_command: tuple[str, list[str]]) -> None:
    profiles = [
        Profile("dev", env={"MODE": "dev"}, args=("--dev",)),
        Profile("prod", env={"MODE": "prod"}),
    ]
    instance_id = echo_instance(store, echo_command, profiles=profiles, default_profile="prod")

    default = spec_for_instance(store, instance_id)
    dev = spec_for_instance(store, "echo", profile="dev")

    assert default.env is not None and default.env["MODE"] == "prod"
    assert dev.env is not None and dev.env["MODE"] == "dev"
    assert dev.args == (*echo_command[1], "--dev")
    assert default.args == tuple(echo_command[1])
    assert "PATH" in dev.env


def test_unknown_profile_lists_available(store: Store, echo_command: tuple[str, list[str]]) -> None:
    echo_instance(store, echo_command, profiles=[Profile("dev"), Profile("prod")])

    with pytest.raises(McpConfigError) as raised:
        spec_for_instance(store, "echo", profile="staging")

    assert "no profile 'staging'" in str(raised.value)
    assert "dev, prod" in str(raised.value)


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (Profile("p", env={"GITHUB_TOKEN": "x"}), "'GITHUB_TOKEN' of MCP instance 'echo' looks like a secret"),
        (Profile("p", env={"NOTE": "sk-abcdef"}), "'NOTE' of MCP instance 'echo' looks like a secret"),
        (Profile("p", env={"1BAD": "x"}), "invalid environment variable name '1BAD'"),
        (Profile("p", headers={"Authorization": "Bearer x"}), "header 'Authorization'"),
        (Profile("bad/name"), "invalid profile name 'bad/name'"),
        (Profile("p", args=("--token=profileArg55",)), "argument 1 (--token) looks like a secret"),
    ],
)
def test_invalid_profile_rejected(
    store: Store, echo_command: tuple[str, list[str]], profile: Profile, expected: str
) -> None:
    echo_instance(store, echo_command)

    with pytest.raises(McpConfigError) as raised:
        set_profile(store, "echo", profile)

    assert expected in str(raised.value)


def test_default_profile_not_removed(store: Store, echo_command: tuple[str, list[str]]) -> None:
    echo_instance(store, echo_command, profiles=[Profile("a"), Profile("b")])

    with pytest.raises(McpConfigError, match="is the default"):
        remove_profile(store, "echo", "a")
    assert list(remove_profile(store, "echo", "b").profiles) == ["a"]


def test_options_and_timeouts_in_spec(store: Store, echo_command: tuple[str, list[str]]) -> None:
    echo_instance(store, echo_command)

    set_options(store, "echo", timeouts=Timeouts(connect_s=5, call_s=12.5, progress_extends=False), allow_sampling=True)
    spec = spec_for_instance(store, "echo")

    assert spec.connect_timeout_s == 5
    assert spec.call_timeout_s == 12.5
    assert spec.reset_timeout_on_progress is False
    assert spec.allow_sampling is True
    with pytest.raises(McpConfigError, match="call timeout -1"):
        set_options(store, "echo", timeouts=Timeouts(call_s=-1))


def test_studio_tools_runs_with_this_python(store: Store) -> None:
    create_instance(store, "builtin:studio-tools", name="tools", profiles=[Profile("d", args=("--root", "/tmp"))])

    spec = spec_for_instance(store, "tools")

    assert spec.command == sys.executable
    assert spec.args == ("-m", "studio.toolserver", "--root", "/tmp")


def test_env_binding_reads_vault(store: Store, file_vault: SecretVault, echo_command: tuple[str, list[str]]) -> None:
    connection = create_connection(store, file_vault, "echo key", "api_key", secret=SECRET)
    echo_instance(store, echo_command, bindings=[Binding("env", "ECHO_API_KEY", connection.id)])

    spec = spec_for_instance(store, "echo", vault=file_vault)

    assert spec.env is not None and spec.env["ECHO_API_KEY"] == SECRET
    assert SECRET not in repr(spec)
    assert SECRET not in spec.key
    assert SECRET.encode() not in Path(str(store.path)).read_bytes()


def test_binding_opens_vault_from_environment(
    store: Store, file_vault: SecretVault, echo_command: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = create_connection(store, file_vault, "echo key", "api_key", secret=SECRET)
    echo_instance(store, echo_command, bindings=[Binding("env", "ECHO_API_KEY", connection.id)])
    monkeypatch.setenv(BACKEND_VARIABLE, "file")
    monkeypatch.setenv(FILE_VARIABLE, str(file_vault_path(file_vault)))
    monkeypatch.setenv(PASSPHRASE_VARIABLE, PASSPHRASE)

    spec = spec_for_instance(store, "echo")

    assert spec.env is not None and spec.env["ECHO_API_KEY"] == SECRET


def file_vault_path(vault: SecretVault) -> Path:
    description = vault.backend_description()
    return Path(description.split("encrypted file ", 1)[1].strip())


def test_header_binding_builds_bearer(store: Store, file_vault: SecretVault) -> None:
    connection = create_connection(store, file_vault, "remote token", "bearer", secret=SECRET)
    entry = add_entry(store, "remote", "http", url="http://127.0.0.1:9/mcp")
    create_instance(store, entry, bindings=[Binding("header", "Authorization", connection.id)])

    spec = spec_for_instance(store, "remote", vault=file_vault)

    assert spec.headers == {"Authorization": f"Bearer {SECRET}"}
    assert SECRET not in repr(spec)


def test_raw_header_for_api_key_setting(store: Store, file_vault: SecretVault) -> None:
    connection = create_connection(store, file_vault, "raw", "api_key", secret=SECRET, settings={"header": "X-Api-Key"})
    entry = add_entry(store, "remote", "http", url="http://127.0.0.1:9/mcp")
    create_instance(store, entry, bindings=[Binding("header", "X-Api-Key", connection.id)])

    assert spec_for_instance(store, "remote", vault=file_vault).headers == {"X-Api-Key": SECRET}


def test_unbound_binding_names_fix(store: Store, echo_command: tuple[str, list[str]]) -> None:
    echo_instance(store, echo_command, bindings=[Binding("env", "ECHO_API_KEY", None)])

    with pytest.raises(McpConfigError) as raised:
        spec_for_instance(store, "echo")

    assert "environment variable ECHO_API_KEY of MCP instance 'echo' needs a connection" in str(raised.value)
    assert "studio mcp bind echo --env ECHO_API_KEY" in str(raised.value)


def test_deleted_connection_reported(
    store: Store, file_vault: SecretVault, echo_command: tuple[str, list[str]]
) -> None:
    connection = create_connection(store, file_vault, "gone", "api_key", secret=SECRET)
    echo_instance(store, echo_command, bindings=[Binding("env", "ECHO_API_KEY", connection.id)])
    store.delete_connection(connection.id)

    with pytest.raises(McpConfigError, match="which was deleted; bind another connection"):
        spec_for_instance(store, "echo", vault=file_vault)


def test_bind_checks_connection(store: Store, echo_command: tuple[str, list[str]]) -> None:
    echo_instance(store, echo_command)

    with pytest.raises(McpConfigError, match="connection 'nope' was not found"):
        bind(store, "echo", "env", "TOKEN", "nope")
    with pytest.raises(McpConfigError, match="invalid HTTP header name 'a b'"):
        bind(store, "echo", "header", "a b", None)


def test_missing_instance_named(store: Store) -> None:
    with pytest.raises(McpNotFoundError, match="MCP instance 'ghost' was not found"):
        spec_for_instance(store, "ghost")


async def test_session_passes_bound_secret(
    store: Store, file_vault: SecretVault, echo_command: tuple[str, list[str]]
) -> None:
    connection = create_connection(store, file_vault, "echo key", "api_key", secret=SECRET)
    echo_instance(
        store,
        echo_command,
        profiles=[Profile("default", env={"ECHO_MODE": "loud"})],
        bindings=[Binding("env", "ECHO_API_KEY", connection.id)],
    )
    session = InstanceSession(store, "echo", vault=file_vault)
    try:
        handshake = await session.start()
        secret = await session.call_tool("env_value", {"name": "ECHO_API_KEY"})
        mode = await session.call_tool("env_value", {"name": "ECHO_MODE"})
        stderr = session.stderr_tail()
    finally:
        await session.stop()

    assert handshake.server_name == "echo-server"
    assert handshake.server_version == "1.2.3"
    assert "tools" in handshake.capabilities
    assert secret.value == {"result": SECRET}
    assert mode.value == {"result": "loud"}
    assert "echo server starting" in stderr


async def test_start_caches_tool_list(store: Store, echo_command: tuple[str, list[str]]) -> None:
    instance_id = echo_instance(store, echo_command)
    session = InstanceSession(store, instance_id)
    try:
        await session.start()
    finally:
        await session.stop()

    cached = cached_tools(store, instance_id)
    entries = tool_entries(store)
    catalog = tool_catalog(store)

    assert cached is not None
    assert cached.server_info["server_name"] == "echo-server"
    assert [(e.instance_name, e.tool_name) for e in entries] == [
        ("echo", "echo"),
        ("echo", "env_value"),
        ("echo", "log_line"),
    ]
    assert entries[0].server_url.startswith(f"stdio:{sys.executable}")
    assert entries[0].input_schema["required"] == ["text"]
    assert catalog.input_schema(instance_id, None, "echo") == entries[0].input_schema


async def test_token_server_through_binding(store: Store, file_vault: SecretVault, token_echo: str) -> None:
    connection = create_connection(store, file_vault, "echo token", "bearer", secret="echo-token-5521")
    entry = add_entry(store, "token echo", "http", url=token_echo)
    create_instance(store, entry, bindings=[Binding("header", "Authorization", connection.id)])
    session = InstanceSession(store, "token echo", vault=file_vault)
    try:
        await session.start()
        result = await session.call_tool("echo", {"text": "ab", "times": 2})
    finally:
        await session.stop()

    assert result.value == {"text": "abab"}


def test_delete_instance_removes_profiles(store: Store, echo_command: tuple[str, list[str]]) -> None:
    echo_instance(store, echo_command, profiles=[Profile("a")])

    delete_instance(store, "echo")

    assert list_instances(store) == []
    with pytest.raises(McpNotFoundError):
        get_instance(store, "echo")


def test_delete_instance_in_use_needs_force(store: Store, echo_command: tuple[str, list[str]]) -> None:
    from studio.model.document import workflow_from_data
    from studio.store import workflow_library as library

    instance_id = echo_instance(store, echo_command)
    loop_body = [{"id": "inner", "type": "mcp_call", "config": {"instance_id": instance_id, "tool": "echo"}}]
    workflow = workflow_from_data(
        {
            "schema_version": 1,
            "name": "Uses echo",
            "steps": [{"id": "loop", "type": "for_each", "config": {"items": [1], "steps": loop_body}}],
        },
        "test",
    )
    library.save_draft(store, workflow)

    with pytest.raises(McpConfigError) as raised:
        delete_instance(store, "echo")

    assert "MCP instance 'echo' is used by workflow 'Uses echo' (draft, steps inner)" in str(raised.value)
    assert [instance.name for instance in list_instances(store)] == ["echo"]
    delete_instance(store, "echo", force=True)
    assert list_instances(store) == []


async def test_stderr_hides_bound_secret(store: Store, file_vault: SecretVault, tmp_path: Path) -> None:
    script = tmp_path / "prints_key.py"
    script.write_text(
        "import os, sys\n"
        "sys.stderr.write('key ' + os.environ['ECHO_API_KEY'] + ' was rejected\\n')\n"
        "sys.stderr.write('header Bearer ' + os.environ['ECHO_API_KEY'] + '\\n')\n"
        "sys.exit(1)\n"
    )
    connection = create_connection(store, file_vault, "echo key", "api_key", secret=SECRET)
    entry = add_entry(store, "prints key", "stdio", command=sys.executable, args=[str(script)])
    create_instance(store, entry, name="prints-key", bindings=[Binding("env", "ECHO_API_KEY", connection.id)])
    session = InstanceSession(store, "prints-key", vault=file_vault)
    try:
        with pytest.raises(McpConnectError) as caught:
            await session.start()
        stderr = session.stderr_tail()
    finally:
        await session.stop()

    message = caught.value.message
    assert "exited during startup" in message
    assert SECRET not in message
    assert "key [redacted] was rejected" in message
    assert "header Bearer [redacted]" in message
    assert SECRET not in stderr
