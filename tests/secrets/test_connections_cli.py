"""``studio connections`` end to end in subprocesses, with secrets in an encrypted file in tmp_path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from studio.store import open_store
from tests.conftest import REPO_ROOT, build_workflow, cli_env
from tests.secrets.keyring_backends import PASSPHRASE

SECRET = "sk-cli-canary-Wn4Rt8Yb2Q"
NEW_SECRET = "sk-cli-rotated-Jd6Kp1Vc9S"


def connections_cli(db: Path, env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "studio", "--db", str(db), "connections", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )


@pytest.fixture
def secrets_env(tmp_path: Path) -> dict[str, str]:
    return cli_env(
        STUDIO_SECRETS_BACKEND="file",
        STUDIO_SECRETS_FILE=str(tmp_path / "secrets.cfg"),
        STUDIO_SECRETS_PASSPHRASE=PASSPHRASE,
    )


@pytest.mark.slow
def test_cli_add_list_rotate_delete(tmp_path: Path, secrets_env: dict[str, str]) -> None:
    db = tmp_path / "studio.db"
    outputs: list[str] = []

    added = connections_cli(
        db,
        secrets_env,
        "add",
        "Gateway",
        "--kind",
        "bearer",
        "--base-url",
        "http://127.0.0.1:9/v1",
        stdin=SECRET + "\n",
    )
    outputs += [added.stdout, added.stderr]
    assert added.returncode == 0, added.stderr
    assert "Created connection" in added.stdout
    assert "encrypted file" in added.stdout

    listed = connections_cli(db, secrets_env, "list", "--json")
    outputs += [listed.stdout, listed.stderr]
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(row["name"], row["kind"], row["has_secret"]) for row in rows] == [("Gateway", "bearer", True)]

    rotated = connections_cli(
        db, {**secrets_env, "NEW_TOKEN": NEW_SECRET}, "rotate", "Gateway", "--secret-env", "NEW_TOKEN"
    )
    outputs += [rotated.stdout, rotated.stderr]
    assert rotated.returncode == 0, rotated.stderr
    assert "Rotated the secret of connection" in rotated.stdout

    deleted = connections_cli(db, secrets_env, "delete", rows[0]["id"])
    outputs += [deleted.stdout, deleted.stderr]
    assert deleted.returncode == 0, deleted.stderr
    assert connections_cli(db, secrets_env, "list", "--json").stdout.strip() == "[]"

    for output in outputs:
        assert SECRET not in output
        assert NEW_SECRET not in output
    secrets_file = (tmp_path / "secrets.cfg").read_bytes()
    assert SECRET.encode() not in secrets_file
    assert NEW_SECRET.encode() not in secrets_file


@pytest.mark.slow
def test_cli_delete_in_use_rejected(tmp_path: Path, secrets_env: dict[str, str]) -> None:
    db = tmp_path / "studio.db"
    added = connections_cli(db, secrets_env, "add", "Local", "--kind", "none", "--base-url", "http://127.0.0.1:9/v1")
    assert added.returncode == 0, added.stderr
    store = open_store(db)
    try:
        connection_id = store.list_connections()[0]["id"]
        step = {"id": "ask", "type": "llm_call", "config": {"connection_id": connection_id, "prompt": "hi"}}
        store.save_draft(build_workflow([step], name="Uses local"))
    finally:
        store.close()

    rejected = connections_cli(db, secrets_env, "delete", "Local")
    forced = connections_cli(db, secrets_env, "delete", "Local", "--force")

    assert rejected.returncode == 2
    assert "workflow 'Uses local' (draft, steps ask)" in rejected.stderr
    assert "delete with force" in rejected.stderr
    assert forced.returncode == 0, forced.stderr
    assert "warning: workflow 'Uses local'" in forced.stderr


def test_cli_without_passphrase_explains(tmp_path: Path) -> None:
    env = cli_env(STUDIO_SECRETS_BACKEND="file", STUDIO_SECRETS_FILE=str(tmp_path / "secrets.cfg"))

    result = connections_cli(tmp_path / "studio.db", env, "add", "Gateway", "--kind", "bearer", stdin=SECRET + "\n")

    assert result.returncode == 2
    assert "STUDIO_SECRETS_PASSPHRASE" in result.stderr
    assert SECRET not in result.stderr
    assert not (tmp_path / "secrets.cfg").exists()
