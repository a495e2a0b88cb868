"""The journal tables after migration 0006: clustered keys, data kept across the upgrade, derived step usage."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from alembic import command

from studio.engine import Engine
from studio.store import open_store
from studio.store.database import HEAD_REVISION, _alembic_config, create_sqlite_engine
from tests.conftest import build_workflow, lua_step


def _create_sql(path: Path, table: str) -> str:
    with sqlite3.connect(path) as connection:
        row = connection.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    return str(row[0])


def test_journal_tables_are_clustered(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    open_store(path).close()

    for table in ("step_runs", "events"):
        assert "WITHOUT ROWID" in _create_sql(path, table), table
    with sqlite3.connect(path) as connection:
        indexes = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "ix_events_run_seq" not in indexes


def test_upgrade_keeps_runs_of_0002(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = create_sqlite_engine(path)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
    engine.dispose()
    now = time.time()
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA foreign_keys=OFF")
        connection.execute(
            "INSERT INTO runs (id, workspace_id, project_id, workflow_id, version_id, status, inputs, created_at) "
            "VALUES ('run-1', 'w', 'p', 'wf', 'v', 'completed', '{}', ?)",
            (now,),
        )
        connection.execute(
            "INSERT INTO step_runs (run_id, step_key, step_id, step_type, status, attempt, result, pinned) "
            "VALUES ('run-1', 'a', 'a', 'lua_script', 'completed', 1, '42', 0)"
        )
        for seq, kind in ((1, "run_created"), (2, "step_completed")):
            connection.execute(
                "INSERT INTO events (run_id, seq, type, step_key, at, data) VALUES ('run-1', ?, ?, 'a', ?, '{}')",
                (seq, kind, now),
            )

    store = open_store(path)
    try:
        assert [event["type"] for event in store.events("run-1")] == ["run_created", "step_completed"]
        assert store.step_runs("run-1")["a"].result == 42
    finally:
        store.close()
    assert "WITHOUT ROWID" in _create_sql(path, "events")


async def test_step_usage_is_derived_from_step_runs(tmp_path: Path) -> None:
    store = open_store(tmp_path / "usage.db")
    engine = Engine(store)
    try:
        workflow = build_workflow([lua_step("a", "return 1"), lua_step("b", "return 2")])
        version = store.publish_workflow(workflow)
        run_id = await engine.start_run(version.id, {})
        summary = await engine.wait(run_id)
        assert summary.status == "completed"

        first = store.usage(run_id)
        second = store.usage(run_id)
    finally:
        await engine.aclose()
        store.close()

    steps = [record for record in first if record["kind"] == "step"]
    assert sorted(record["step_id"] for record in steps) == ["a", "b"]
    assert all(record["credits"] == 0.1 for record in steps)
    assert all(record["workflow_id"] == workflow.id for record in steps)
    assert [record["id"] for record in first] == [record["id"] for record in second]


def test_head_revision_is_newest_migration(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    path = tmp_path / "head.db"
    open_store(path).close()
    with sqlite3.connect(path) as connection:
        stored = connection.execute("SELECT version_num FROM alembic_version").fetchall()

    assert head == HEAD_REVISION
    assert stored == [(head,)]
