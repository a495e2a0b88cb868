"""The SQLite store on a real file: migrations, connection settings, drafts, versions and record scoping."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from studio.model.document import DocumentError, content_hash
from studio.store import NotFoundError, Store, StoreError, open_store
from tests.conftest import build_workflow, lua_step


def schema_of(path: Path) -> list[tuple[str, str]]:
    """(name, sql) of every table and index in the file, read with the sqlite3 module directly."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    return [(str(name), str(sql)) for name, sql in rows]


def test_migrations_create_schema(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "fresh.db"
    caplog.set_level(logging.INFO, logger="studio.store.database")

    store = open_store(path)
    store.close()

    assert any("Migrating database schema from empty" in record.message for record in caplog.records)
    names = {name for name, _ in schema_of(path)}
    for table in ("workspaces", "projects", "workflows", "drafts", "workflow_versions", "runs", "step_runs"):
        assert table in names
    for table in ("events", "human_tasks", "usage_records", "mcp_instances", "connections", "alembic_version"):
        assert table in names


def test_second_open_is_noop(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "twice.db"
    first = open_store(path)
    workflow = build_workflow([lua_step("a", "return 1")])
    version = first.publish_workflow(workflow)
    workspace = first.workspace_id
    first.close()
    before = schema_of(path)
    caplog.set_level(logging.INFO, logger="studio.store.database")

    second = open_store(path)
    try:
        assert not any("Migrating" in record.message for record in caplog.records)
        assert schema_of(path) == before
        assert second.workspace_id == workspace
        assert second.get_version(version.id).number == 1
    finally:
        second.close()


def test_connection_settings(store: Store) -> None:
    with store.engine.connect() as connection:
        journal_mode = connection.execute(text("PRAGMA journal_mode")).scalar()
        synchronous = connection.execute(text("PRAGMA synchronous")).scalar()
        foreign_keys = connection.execute(text("PRAGMA foreign_keys")).scalar()

    assert journal_mode == "wal"
    assert synchronous == 1, "synchronous=NORMAL"
    assert foreign_keys == 1
    assert store.path is not None
    assert store.path.with_name(store.path.name + "-wal").exists()


def test_publish_same_content_reuses_version(store: Store) -> None:
    workflow = build_workflow([lua_step("a", "return 1")])

    first = store.publish_workflow(workflow, note="first")
    again = store.publish_workflow(workflow.model_copy(deep=True), note="again")

    assert again.id == first.id
    assert again.number == 1
    assert again.note == "first"
    assert first.content_hash == content_hash(workflow)
    assert first.content_hash.startswith("sha256:")
    assert len(store.list_versions(workflow.id)) == 1


def test_changed_content_new_version(store: Store) -> None:
    workflow = build_workflow([lua_step("a", "return 1")])
    first = store.publish_workflow(workflow)
    changed = workflow.model_copy(deep=True)
    changed.steps[0].config.source = "return 2"  # type: ignore[union-attr]

    second = store.publish_workflow(changed)

    assert second.number == 2
    assert second.id != first.id
    assert second.content_hash != first.content_hash
    kept = store.get_version(first.id)
    assert kept.document == first.document
    assert kept.workflow.steps[0].config.source == "return 1"  # type: ignore[union-attr]
    assert [version.number for version in store.list_versions(workflow.id)] == [1, 2]
    assert store.publish_workflow(workflow).id == first.id


def test_version_reads_back_same_workflow(store: Store) -> None:
    workflow = build_workflow([lua_step("a", "return 1"), lua_step("b", "return 2")])
    version = store.publish_workflow(workflow)

    stored = store.get_version(version.id)

    assert stored.workflow == workflow
    assert stored.document == workflow.model_dump(mode="json")
    assert stored.workflow is not stored.workflow  # each read is a copy the caller may change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("json_remove(document, '$.schema_version')", "schema_version: missing"),
        ("json_set(document, '$.schema_version', '1')", "schema_version"),
        ("json_set(document, '$.steps[1].config.timeout_s', 'soon')", "steps[1].config.timeout_s"),
    ],
)
def test_damaged_version_error_names_path(store: Store, change: str, expected: str) -> None:
    workflow = build_workflow([lua_step("a", "return 1"), lua_step("b", "return 2")])
    version = store.publish_workflow(workflow)
    with store.engine.begin() as connection:
        connection.execute(text(f"UPDATE workflow_versions SET document = {change} WHERE id = :id"), {"id": version.id})

    with pytest.raises(DocumentError) as raised:
        _ = store.get_version(version.id).workflow

    assert expected in str(raised.value)
    assert f"version 1 of workflow {workflow.id}" in str(raised.value)


def test_publish_keeps_validation_mark(store: Store) -> None:
    unmarked = build_workflow([lua_step("a", "return 1")])
    marked = build_workflow([lua_step("b", "return 2")])

    first = store.publish_workflow(unmarked)
    again = store.publish_workflow(unmarked, validated_by="7")
    stored = store.publish_workflow(marked, validated_by="7")
    republished = store.publish_workflow(marked)

    assert first.validated_by is None
    assert again.id == first.id
    assert again.validated_by == "7"
    assert store.get_version(first.id).validated_by == "7"
    assert store.get_version(stored.id).validated_by == "7"
    assert republished.validated_by == "7"


def test_versions_cannot_be_rewritten(store: Store) -> None:
    workflow = build_workflow([lua_step("a", "return 1")])
    version = store.publish_workflow(workflow)

    with store.engine.connect() as connection, pytest.raises(Exception, match="UNIQUE"):
        # A second row with the same content hash for the workflow is rejected by the schema itself.
        connection.execute(
            text(
                "INSERT INTO workflow_versions (id, workspace_id, project_id, workflow_id, number, content_hash,"
                " note, created_at, document) SELECT 'copy', workspace_id, project_id, workflow_id, 9,"
                " content_hash, note, created_at, document FROM workflow_versions WHERE id = :id"
            ),
            {"id": version.id},
        )


def test_drafts_save_and_load(store: Store) -> None:
    workflow = build_workflow([lua_step("a", "return 1")], name="Draft one")

    assert store.save_draft(workflow) == 1
    edited = workflow.model_copy(deep=True)
    edited.name = "Draft two"
    assert store.save_draft(edited) == 2

    loaded = store.get_draft(workflow.id)
    assert loaded is not None
    assert loaded == edited
    assert store.get_draft("no-such-workflow") is None
    assert store.workflow_names([workflow.id]) == {workflow.id: "Draft two"}
    assert store.list_versions(workflow.id) == []


def test_records_carry_workspace_and_project(store: Store) -> None:
    assert store.path is not None
    with sqlite3.connect(store.path) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = {table: {row[1] for row in connection.execute(f"PRAGMA table_info({table})")} for table in tables}
    # Rows that belong to one parent record reach its scope through the parent's id: step runs
    # and events through run_id, a connection's OAuth state, checks and usage links through
    # connection_id, an MCP instance's profiles, bindings and tool cache through instance_id.
    children = {
        "mcp_instance_profiles": "instance_id",
        "mcp_instance_bindings": "instance_id",
        "mcp_tool_cache": "instance_id",
        "step_runs": "run_id",
        "events": "run_id",
        "connection_oauth": "connection_id",
        "connection_checks": "connection_id",
        "connection_usage_links": "connection_id",
    }
    records = set(columns) - set(children) - {"workspaces", "alembic_version"}
    for table, parent_id in children.items():
        assert parent_id in columns[table], table
    assert len(records) >= 8
    for table in sorted(records):
        assert "workspace_id" in columns[table], table
        if table != "projects":
            assert "project_id" in columns[table], table


def test_scope_filled_on_written_rows(store: Store) -> None:
    workflow = build_workflow([lua_step("a", "return 1")])
    store.save_draft(workflow)
    version = store.publish_workflow(workflow)
    run = store.create_run(
        version,
        {},
        first_event={"run_id": "r-1", "seq": 1, "type": "run_created", "step_key": None, "at": 0.0, "data": {}},
    )

    assert (run.workspace_id, run.project_id) == (store.workspace_id, store.project_id)
    with store.engine.connect() as connection:
        for table in ("workflows", "drafts", "workflow_versions", "runs"):
            scopes = connection.execute(text(f"SELECT DISTINCT workspace_id, project_id FROM {table}")).all()
            assert [tuple(row) for row in scopes] == [(store.workspace_id, store.project_id)], table


def test_unknown_ids_raise_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="run 'nope' was not found"):
        store.get_run("nope")
    with pytest.raises(NotFoundError, match="workflow version 'nope' was not found"):
        store.get_version("nope")
    with pytest.raises(NotFoundError, match="human task 'beef' was not found"):
        store.get_task("beef")


def test_claim_run_compare_and_set(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    one, two = open_store(path), open_store(path)
    try:
        version = one.publish_workflow(build_workflow([lua_step("a", "return 1")]))
        first_event = {"run_id": "run-1", "seq": 1, "type": "run_created", "step_key": None, "at": 0.0, "data": {}}
        one.create_run(version, {}, first_event=first_event)

        assert one.claim_run("run-1", "owner-a", expected_owner=None)
        assert not two.claim_run("run-1", "owner-b", expected_owner=None)
        assert two.claim_run("run-1", "owner-b", expected_owner="owner-a")
        assert one.get_run("run-1").owner == "owner-b"
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize("prefix", ["____", "%%%%", "ab", "ABCD", "a' OR 1"])
def test_id_prefix_rejects_wildcards(store: Store, prefix: str) -> None:
    with pytest.raises(StoreError) as raised:
        store.get_task(prefix)
    assert prefix in str(raised.value)
    with pytest.raises(StoreError):
        store.find_run(prefix)
