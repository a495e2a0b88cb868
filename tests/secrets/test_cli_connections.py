"""``studio connections`` test, usage, add-oauth and login in subprocesses, and their parser next to cli.py's."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from studio import cli
from studio.cli_connections import _subcommands_of, add_commands, handle
from studio.store import open_store
from tests.conftest import REPO_ROOT, build_workflow, cli_env
from tests.fakes.oauth_server import FakeOAuthServer, oauth_server
from tests.fakes.openai_server import FakeOpenAIServer, openai_server
from tests.secrets.keyring_backends import PASSPHRASE

KEY = "sk-cli-check-canary-Lq0Z"
COMMAND = [sys.executable, "-m", "studio.cli_connections"]


@pytest.fixture
def secrets_env(tmp_path: Path) -> dict[str, str]:
    return cli_env(
        STUDIO_SECRETS_BACKEND="file",
        STUDIO_SECRETS_FILE=str(tmp_path / "secrets.cfg"),
        STUDIO_SECRETS_PASSPHRASE=PASSPHRASE,
    )


@pytest.fixture
def llm_server() -> Iterator[FakeOpenAIServer]:
    with openai_server(api_key=KEY) as server:
        yield server


@pytest.fixture
def auth_server() -> Iterator[FakeOAuthServer]:
    with oauth_server() as server:
        yield server


def connections(
    db: Path, env: dict[str, str], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "--db", str(db), "connections", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )


def test_studio_parser_has_connections_commands() -> None:
    parser = cli.build_parser()

    ours = parser.parse_args(["connections", "usage", "Gateway"])
    theirs = parser.parse_args(["connections", "list"])
    other = parser.parse_args(["tasks"])

    assert ours.connections_owner == "studio.cli_connections"
    assert theirs.connections_owner == "studio.cli_connections"
    assert handle(other) is None


def test_parser_standalone_has_all_commands() -> None:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    commands = _subcommands_of(_subcommands_of(parser).choices["connections"]).choices

    assert set(commands) == {"list", "add", "rotate", "delete", "add-oauth", "login", "test", "usage", "default"}


@pytest.mark.slow
def test_cli_test_and_usage(tmp_path: Path, secrets_env: dict[str, str], llm_server: FakeOpenAIServer) -> None:
    db = tmp_path / "studio.db"
    added = connections(
        db, secrets_env, "add", "LLM", "--kind", "api_key", "--provider", "openai", "--base-url", llm_server.base_url,
        stdin=KEY + "\n",
    )
    assert added.returncode == 0, added.stderr
    store = open_store(db)
    connection_id = store.list_connections()[0]["id"]
    step = {"id": "ask", "type": "llm_call", "config": {"connection_id": connection_id, "prompt": "hi"}}
    store.save_draft(build_workflow([step], name="Questions"))
    store.close()

    tested = connections(db, secrets_env, "test", "LLM")
    usage = connections(db, secrets_env, "usage", "LLM")
    listed = connections(db, secrets_env, "list")
    refused = connections(db, secrets_env, "delete", "LLM")

    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.startswith("works: GET ")
    assert usage.returncode == 0, usage.stderr
    assert usage.stdout.strip() == "workflow 'Questions' (draft, steps ask)"
    assert " works " in listed.stdout
    assert refused.returncode == 2
    assert "workflow 'Questions'" in refused.stderr
    for result in (added, tested, usage, listed, refused):
        assert KEY not in result.stdout + result.stderr


@pytest.mark.slow
def test_cli_test_reports_rejected_key(
    tmp_path: Path, secrets_env: dict[str, str], llm_server: FakeOpenAIServer
) -> None:
    db = tmp_path / "studio.db"
    wrong = "sk-wrong-cli-canary-4Rt"
    connections(
        db, secrets_env, "add", "LLM", "--kind", "api_key", "--provider", "openai", "--base-url", llm_server.base_url,
        stdin=wrong + "\n",
    )

    tested = connections(db, secrets_env, "test", "LLM")

    assert tested.returncode == 1
    assert tested.stdout.startswith("rejected: ")
    assert wrong not in tested.stdout + tested.stderr


@pytest.mark.slow
def test_cli_login_prints_url_and_waits(
    tmp_path: Path, secrets_env: dict[str, str], auth_server: FakeOAuthServer
) -> None:
    db = tmp_path / "studio.db"
    client = auth_server.add_client()
    added = connections(
        db, secrets_env, "add-oauth", "Tokens",
        "--authorization-endpoint", f"{auth_server.base_url}/authorize",
        "--token-endpoint", f"{auth_server.base_url}/token",
        "--client-id", client.client_id, "--scope", "mcp:tools",
    )
    assert added.returncode == 0, added.stderr
    assert "studio connections login Tokens" in added.stdout

    login = subprocess.Popen(
        [*COMMAND, "--db", str(db), "connections", "login", "Tokens", "--no-browser", "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=secrets_env,
        cwd=REPO_ROOT,
    )
    assert login.stdout is not None
    assert login.stdout.readline().startswith("Open this URL to sign in")
    url = login.stdout.readline().strip()
    assert url.startswith(f"{auth_server.base_url}/authorize?")
    page = httpx.get(url, follow_redirects=True, timeout=30)
    out, err = login.communicate(timeout=120)

    assert page.status_code == 200
    assert "Signed in" in page.text
    assert login.returncode == 0, err
    assert out.startswith("Signed in; token valid until ")
    assert "scopes mcp:tools" in out
    tokens = [*auth_server.access_tokens, *auth_server.refresh_tokens]
    assert len(tokens) == 2
    for token in tokens:
        assert token not in out + err
    listed = connections(db, secrets_env, "list", "--json")
    assert '"status": "signed in"' in listed.stdout


@pytest.mark.slow
def test_cli_default_serves_steps(tmp_path: Path, secrets_env: dict[str, str], llm_server: FakeOpenAIServer) -> None:
    db = tmp_path / "studio.db"
    secrets_env["STUDIO_SKIP_LOCAL_MODEL"] = "1"
    added = connections(
        db, secrets_env, "add", "LLM", "--kind", "api_key", "--provider", "openai", "--base-url", llm_server.base_url,
        stdin=KEY + "\n",
    )
    plain = connections(db, secrets_env, "add", "Plain", "--kind", "bearer", stdin="token-1234\n")
    assert added.returncode == 0, added.stderr
    assert plain.returncode == 0, plain.stderr
    workflow = tmp_path / "ask.workflow.json"
    step = {"id": "ask", "type": "llm_call", "config": {"prompt": "Say hello"}}
    workflow.write_text(json.dumps(build_workflow([step]).model_dump(mode="json")))

    unset = connections(db, secrets_env, "default")
    rejected = connections(db, secrets_env, "default", "Plain")
    marked = connections(db, secrets_env, "default", "LLM", "--model", "fake-model")
    shown = connections(db, secrets_env, "default")
    run = subprocess.run(
        [sys.executable, "-m", "studio", "--db", str(db), "run", str(workflow)],
        capture_output=True, text=True, env=secrets_env, cwd=REPO_ROOT, timeout=120, check=False,
    )
    cleared = connections(db, secrets_env, "default", "--clear")
    after_clear = connections(db, secrets_env, "default")

    assert "No default LLM connection" in unset.stdout
    assert rejected.returncode == 2
    assert "'Plain' has provider None" in rejected.stderr
    assert marked.returncode == 0, marked.stderr
    assert "Default LLM connection: LLM" in marked.stdout
    assert "model fake-model" in shown.stdout
    assert run.returncode == 0, run.stdout + run.stderr
    assert "echo: Say hello" in run.stdout
    assert llm_server.chat_requests[-1].json["model"] == "fake-model"
    assert cleared.returncode == 0, cleared.stderr
    assert "No default LLM connection" in after_clear.stdout
