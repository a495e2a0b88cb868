"""The ``studio mcp`` commands as a user runs them: subprocesses on a temporary database and real servers.

The commands run through ``python -m studio.cli_mcp``, which has the same parser and handler that
the main ``studio`` command includes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, cli_env
from tests.secrets.keyring_backends import PASSPHRASE

pytestmark = pytest.mark.slow

ECHO_SERVER = REPO_ROOT / "tests" / "mcp" / "echo_server.py"
GITHUB_TOKEN = "ghp_cliImportToken0987654321zyxw"


def mcp(db: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "studio", "--db", str(db), "mcp", *args],
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=120,
        cwd=REPO_ROOT,
        check=False,
    )


def vault_env(tmp_path: Path) -> dict[str, str]:
    return cli_env(
        STUDIO_SECRETS_BACKEND="file",
        STUDIO_SECRETS_FILE=str(tmp_path / "secrets.cfg"),
        STUDIO_SECRETS_PASSPHRASE=PASSPHRASE,
    )


def test_catalog_lists_builtin(tmp_path: Path) -> None:
    result = mcp(tmp_path / "s.db", "catalog", "--json")

    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert entries[0]["id"] == "builtin:studio-tools"
    assert entries[0]["builtin"] is True


def test_add_start_tools_call(tmp_path: Path) -> None:
    db = tmp_path / "s.db"

    added = mcp(db, "add", "tools", "--entry", "Studio tools", "--profile-arg=--root", f"--profile-arg={tmp_path}")
    started = mcp(db, "start", "tools")
    cached = mcp(db, "tools", "tools", "--cached", "--json")
    called = mcp(db, "call", "tools", "text_stats", "--args", '{"text": "a b c"}')
    listed = mcp(db, "instances", "--json")

    assert added.returncode == 0, added.stderr
    assert "Added MCP instance" in added.stdout
    assert started.returncode == 0, started.stderr
    assert "server studio-tools 0.1.0" in started.stdout
    assert "Capabilities: prompts, resources, tools" in started.stdout
    assert "text_stats(text, top)" in started.stdout
    assert cached.returncode == 0, cached.stderr
    assert "text_stats" in [tool["name"] for tool in json.loads(cached.stdout)]
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["value"]["words"] == 3
    assert json.loads(listed.stdout)[0]["cached_tools"] > 0


def test_call_error_result_exits_1(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    mcp(db, "add", "tools", "--entry", "Studio tools")

    result = mcp(db, "call", "tools", "fail", "--args", '{"message": "planned failure"}')

    assert result.returncode == 1
    assert json.loads(result.stdout)["is_error"] is True


def test_custom_command_and_env(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    added = mcp(db, "add", "echo", "--command", sys.executable, "--arg", str(ECHO_SERVER), "--env", "ECHO_MODE=quiet")

    result = mcp(db, "call", "echo", "env_value", "--args", '{"name": "ECHO_MODE"}')

    assert added.returncode == 0, added.stderr
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["value"] == {"result": "quiet"}


def test_import_bind_and_export(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    env = vault_env(tmp_path)
    config = tmp_path / "claude_desktop_config.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "echo": {
                        "command": sys.executable,
                        "args": [str(ECHO_SERVER)],
                        "env": {"GITHUB_TOKEN": GITHUB_TOKEN, "ECHO_MODE": "loud"},
                    }
                }
            }
        )
    )
    exported_path = tmp_path / "out.json"

    imported = mcp(db, "import", str(config), env=env)
    secret = mcp(db, "call", "echo", "env_value", "--args", '{"name": "GITHUB_TOKEN"}', env=env)
    exported = mcp(db, "export", "--format", "vscode", "-o", str(exported_path), env=env)

    assert imported.returncode == 0, imported.stderr
    assert "Stored a secret as connection 'echo GITHUB_TOKEN'" in imported.stdout
    assert secret.returncode == 0, secret.stderr
    assert json.loads(secret.stdout)["value"] == {"result": GITHUB_TOKEN}
    assert exported.returncode == 0, exported.stderr
    text = exported_path.read_text()
    assert GITHUB_TOKEN not in text
    assert json.loads(text)["servers"]["echo"]["env"] == {
        "ECHO_MODE": "loud",
        "GITHUB_TOKEN": "${input:echo-github-token}",
    }
    assert GITHUB_TOKEN.encode() not in db.read_bytes()


def test_unbound_placeholder_then_bind(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    env = vault_env(tmp_path)
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps(
            {
                "servers": {
                    "echo": {
                        "type": "stdio",
                        "command": sys.executable,
                        "args": [str(ECHO_SERVER)],
                        "env": {"API_TOKEN": "${input:token}"},
                    }
                }
            }
        )
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "studio",
            "--db",
            str(db),
            "connections",
            "add",
            "echo token",
            "--kind",
            "bearer",
            "--base-url",
            "http://127.0.0.1:9",
        ],
        input="echo-secret-3344\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        check=True,
        timeout=120,
    )

    imported = mcp(db, "import", str(config), env=env)
    before = mcp(db, "start", "echo", env=env)
    bound = mcp(db, "bind", "echo", "--env", "API_TOKEN", "--connection", "echo token", env=env)
    after = mcp(db, "call", "echo", "env_value", "--args", '{"name": "API_TOKEN"}', env=env)

    assert "needs a connection: echo: env API_TOKEN" in imported.stderr
    assert before.returncode == 2
    assert "needs a connection; bind one with 'studio mcp bind echo --env API_TOKEN" in before.stderr
    assert bound.returncode == 0, bound.stderr
    assert json.loads(after.stdout)["value"] == {"result": "echo-secret-3344"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("start", "ghost"), "MCP instance 'ghost' was not found"),
        (("call", "ghost", "t", "--args", "[1]"), "--args must be a JSON object, got list"),
        (("call", "ghost", "t", "--args", "{x"), "--args is not valid JSON"),
        (("import", "/no/such/file.json"), "cannot read /no/such/file.json"),
        (("add", "x", "--entry", "nope"), "MCP catalog entry 'nope' was not found"),
        (("add", "x", "--command", "srv", "--env", "NOVALUE"), "--env 'NOVALUE' is invalid; write --env NAME=VALUE"),
        (("add", "x", "--command", "srv", "--env", "API_KEY=sk-1234"), "looks like a secret"),
        (
            ("add", "x", "--command", "srv", "--call-timeout", "60", "--max-call-time", "30"),
            "maximum call time 30 s is shorter than the call timeout 60 s",
        ),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    result = mcp(tmp_path / "s.db", *args)

    assert result.returncode == 2
    assert expected in result.stderr


def test_broken_server_exits_1(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    mcp(db, "add", "broken", "--command", str(tmp_path / "missing-server"))

    result = mcp(db, "start", "broken")

    assert result.returncode == 1
    assert "missing-server' was not found" in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"mcpServers": {"caf\xe9": {"command": "x"}}}', "is not UTF-8 text (invalid byte at offset 20)"),
        (b'{"a": ' * 5000 + b"1" + b"}" * 5000, "is nested too deeply"),
    ],
)
def test_unreadable_import_file_exits_2(tmp_path: Path, content: bytes, expected: str) -> None:
    config = tmp_path / "config.json"
    config.write_bytes(content)

    result = mcp(tmp_path / "s.db", "import", str(config))

    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_database_not_sqlite_exits_2(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    db.write_text("not a database\n", encoding="utf-8")

    result = mcp(db, "instances")

    assert result.returncode == 2
    assert f"cannot open the database '{db}': file is not a database" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf"])
def test_call_timeout_must_be_positive(tmp_path: Path, timeout: str) -> None:
    db = tmp_path / "s.db"
    mcp(db, "add", "tools", "--entry", "Studio tools")

    result = mcp(db, "call", "tools", "text_stats", "--args", '{"text": "a"}', "--timeout", timeout)

    assert result.returncode == 2
    assert f"--timeout {timeout} is invalid; give a positive number of seconds" in result.stderr


def test_concurrent_imports_store_each_secret_once(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    env = vault_env(tmp_path)
    mcp(db, "instances", env=env)
    config = tmp_path / "cursor.json"
    servers = {
        "echo": {"command": sys.executable, "args": [str(ECHO_SERVER)], "env": {"SECRET_KEY": "s3cret-value-xyz"}},
        "remote": {"url": "http://127.0.0.1:9/mcp", "headers": {"x-api-key": "sk-concurrentSecret00"}},
    }
    config.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    command = [sys.executable, "-m", "studio", "--db", str(db), "mcp", "import", str(config)]

    processes = [
        subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    listed = mcp(db, "instances", "--json", env=env)
    connections = subprocess.run(
        [sys.executable, "-m", "studio", "--db", str(db), "connections", "list"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        check=True,
        timeout=60,
    )

    assert [process.returncode for process in processes] == [0, 0, 0, 0], outputs
    assert sorted(instance["name"] for instance in json.loads(listed.stdout)) == ["echo", "remote"]
    assert len(connections.stdout.strip().splitlines()) == 2, connections.stdout


def test_remove_instance_in_use_needs_force(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    mcp(db, "add", "tools", "--entry", "Studio tools")
    instance_id = json.loads(mcp(db, "instances", "--json").stdout)[0]["id"]
    workflow = {
        "schema_version": 1,
        "name": "Uses tools",
        "steps": [{"id": "stats", "type": "mcp_call", "config": {"instance_id": instance_id, "tool": "text_stats"}}],
    }
    (tmp_path / "wf.json").write_text(json.dumps(workflow), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-m", "studio", "--db", str(db), "publish", str(tmp_path / "wf.json"), "--note", "v1"],
        env=cli_env(),
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )

    rejected = mcp(db, "remove", "tools")
    forced = mcp(db, "remove", "tools", "--force")

    assert rejected.returncode == 2
    assert "is used by workflow 'Uses tools' (draft, steps stats); workflow 'Uses tools' (version 1" in rejected.stderr
    assert forced.returncode == 0, forced.stderr
    assert json.loads(mcp(db, "instances", "--json").stdout) == []


def test_import_of_file_without_servers_says_so(tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    config.write_text('{"mcpServers": {}}', encoding="utf-8")

    result = mcp(tmp_path / "s.db", "import", str(config))

    assert result.returncode == 0, result.stderr
    assert f"note: {config} lists no MCP servers; nothing was imported" in result.stderr


def test_failed_start_shows_no_sdk_traceback(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    assert mcp(db, "add", "talker", "--command", "echo", "--arg", "hi").returncode == 0

    result = mcp(db, "start", "talker")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "talker" in result.stderr


def test_set_changes_call_timeout(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    added = mcp(db, "add", "tools", "--entry", "Studio tools", "--call-timeout", "60")

    shortened = mcp(db, "set", "tools", "--call-timeout", "0.5", "--no-progress-extends")
    timed_out = mcp(db, "call", "tools", "wait", "--args", '{"seconds": 30}')
    cleared = mcp(db, "set", "tools", "--no-call-timeout", "--allow-sampling")
    invalid = mcp(db, "set", "tools", "--call-timeout", "-1")

    assert added.returncode == 0, added.stderr
    assert shortened.returncode == 0, shortened.stderr
    assert "call timeout 0.5 s, progress restarts it: no" in shortened.stdout
    assert timed_out.returncode != 0
    assert "did not finish within 0.5 s" in timed_out.stderr
    assert "raise the call timeout of MCP instance 'tools'" in timed_out.stderr
    assert cleared.returncode == 0, cleared.stderr
    assert "call timeout none" in cleared.stdout
    assert "sampling allowed: yes" in cleared.stdout
    assert invalid.returncode == 2
    assert "call timeout -1.0 s is invalid" in invalid.stderr
