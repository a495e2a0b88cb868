"""Tests of the workflow library on a real SQLite store: drafts, history, publish, versions, defaults, graphs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from studio.model.document import workflow_from_data
from studio.model.shared_graph import ImportMapping, SharedGraphError, parse_shared_graph
from studio.model.workflow import LlmCallStep, McpCallStep, Workflow
from studio.secrets import SecretVault, create_connection
from studio.store import NotFoundError, Store, StoreError, open_store
from studio.store import workflow_library as library
from studio.store.library_tables import draft_revisions, run_setup_defaults
from studio.store.tables import metadata
from tests.secrets.keyring_backends import MemoryKeyring

SECRET = "sk-library-export-9Zq47Ltx0P"
GITHUB_URL = "https://mcp.example.test/github"


def lua(step_id: str, source: str = "return 1") -> dict[str, Any]:
    return {"id": step_id, "type": "lua_script", "config": {"source": source}}


def document(steps: list[dict[str, Any]], name: str = "Library test", workflow_id: str | None = None) -> Workflow:
    data: dict[str, Any] = {"schema_version": 1, "name": name, "steps": steps}
    if workflow_id:
        data["id"] = workflow_id
    return workflow_from_data(data, "test")


def test_migration_matches_tables(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, metadata)
    mine = {draft_revisions.name, run_setup_defaults.name}
    relevant = [item for item in differences if any(name in repr(item) for name in mine)]

    assert relevant == []


def test_create_and_list_workflows(store: Store) -> None:
    first = library.create_workflow(store, "  First  ")
    second = library.create_workflow(store, "Second")

    listed = library.list_workflows(store)

    assert [item.name for item in listed] == ["Second", "First"]
    assert listed[1].id == first.id
    assert listed[0].id == second.id
    assert listed[0].draft_state == "new"
    assert listed[0].latest_version is None
    assert listed[0].draft_revision == 1


def test_invalid_names_are_rejected(store: Store) -> None:
    with pytest.raises(StoreError, match="workflow name '' is invalid"):
        library.create_workflow(store, "")
    with pytest.raises(StoreError, match="give 1 to 200 characters"):
        library.create_workflow(store, "x" * 201)


def test_projects_scope_the_list(store: Store) -> None:
    project = library.create_project(store, "Team A")
    again = library.create_project(store, "Team A")
    library.create_workflow(store, "In A", project_id=project.id)
    library.create_workflow(store, "In default")

    assert project.slug == "team-a"
    assert again.slug == "team-a-2"
    assert [item.name for item in library.list_workflows(store, project.id)] == ["In A"]
    assert [item.name for item in library.list_workflows(store)] == ["In default"]
    assert {item.name for item in library.list_projects(store)} >= {"Team A", "Default project"}


def test_every_save_is_kept(store: Store) -> None:
    workflow = document([lua("a")])
    first = library.save_draft(store, workflow)
    same = library.save_draft(store, workflow)
    changed = workflow.model_copy(update={"description": "changed"})
    second = library.save_draft(store, changed)

    revisions = library.list_draft_revisions(store, workflow.id)

    assert (first.revision, first.changed) == (1, True)
    assert (same.revision, same.changed) == (1, False)
    assert second.revision == 2
    assert [revision.revision for revision in revisions] == [2, 1]
    assert revisions[0].workflow.description == "changed"
    assert revisions[1].workflow.description == ""


def test_draft_saved_elsewhere_is_kept(store: Store) -> None:
    workflow = document([lua("a")])
    library.save_draft(store, workflow)
    outside = workflow.model_copy(update={"description": "autosaved elsewhere"})
    store.save_draft(outside)

    library.save_draft(store, workflow.model_copy(update={"description": "library save"}))
    revisions = library.list_draft_revisions(store, workflow.id)

    assert [revision.reason for revision in revisions] == ["save", "kept", "save"]
    assert revisions[1].workflow.description == "autosaved elsewhere"


def test_publish_and_draft_state(store: Store) -> None:
    workflow = document([lua("a")])
    library.save_draft(store, workflow)

    version = library.publish_draft(store, workflow.id, "  first release ")
    state_after_publish = library.list_workflows(store)[0]
    library.save_draft(store, workflow.model_copy(update={"description": "more"}))
    state_after_edit = library.list_workflows(store)[0]

    assert version.number == 1
    assert version.note == "first release"
    assert state_after_publish.draft_state == "published"
    assert state_after_publish.latest_version == 1
    assert state_after_edit.draft_state == "modified"


def test_publish_blocked_by_errors(store: Store) -> None:
    steps = [lua("a", ""), {"id": "b", "type": "mcp_call", "config": {"tool": ""}}]
    workflow = document(steps)

    with pytest.raises(library.PublishBlockedError) as raised:
        library.publish(store, workflow, "should fail")

    message = str(raised.value)
    assert "cannot publish workflow 'Library test'" in message
    assert "fix them and publish again" in message
    assert "step 'a'" in message
    assert "step 'b'" in message
    assert raised.value.findings
    assert store.list_versions(workflow.id) == []
    assert store.get_draft(workflow.id) == workflow


def test_restore_keeps_the_replaced_draft(store: Store) -> None:
    workflow = document([lua("a", "return 1")])
    library.publish(store, workflow, "v1")
    edited = workflow.model_copy(update={"description": "unpublished work"})
    library.save_draft(store, edited)

    restored = library.restore_version(store, workflow.id, 1)
    revisions = library.list_draft_revisions(store, workflow.id)

    assert restored == workflow
    assert store.get_draft(workflow.id) == workflow
    assert revisions[0].reason == "restore"
    assert revisions[0].source_version == 1
    assert any(revision.workflow.description == "unpublished work" for revision in revisions)


def test_restore_unknown_version(store: Store) -> None:
    workflow = document([lua("a")])
    library.publish(store, workflow, "v1")

    with pytest.raises(NotFoundError, match="has no version 7; published versions: 1"):
        library.restore_version(store, workflow.id, 7)


def test_rename_and_archive(store: Store) -> None:
    workflow = library.create_workflow(store, "Old name")

    library.rename_workflow(store, workflow.id, "New name")
    library.set_archived(store, workflow.id)

    assert library.get_draft(store, workflow.id).name == "New name"
    assert library.list_workflows(store) == []
    assert library.list_workflows(store, include_archived=True)[0].name == "New name"
    with pytest.raises(NotFoundError):
        library.set_archived(store, "no-such-workflow")


def test_find_workflow_by_name_and_prefix(store: Store) -> None:
    workflow = library.create_workflow(store, "Findable")

    assert library.find_workflow(store, "Findable") == workflow.id
    assert library.find_workflow(store, workflow.id[:8]) == workflow.id
    with pytest.raises(NotFoundError, match="workflow 'absent' was not found"):
        library.find_workflow(store, "absent")


def test_run_defaults_round_trip(store: Store) -> None:
    workflow = document([lua("a")])

    assert library.get_run_defaults(store, workflow.id) == {}
    library.save_run_defaults(store, workflow, {"count": 3, "label": "x"})
    library.save_run_defaults(store, workflow, {"count": 4})

    assert library.get_run_defaults(store, workflow.id) == {"count": 4}


def test_run_defaults_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "reopen.db"
    first = open_store(path)
    workflow = document([lua("a")])
    library.save_run_defaults(first, workflow, {"count": 9})
    first.close()

    second = open_store(path)
    try:
        assert library.get_run_defaults(second, workflow.id) == {"count": 9}
    finally:
        second.close()


def graph_workflow(instance_id: str, connection_id: str) -> Workflow:
    return document(
        [
            {"id": "issues", "type": "mcp_call", "config": {"instance_id": instance_id, "tool": "list_issues"}},
            {"id": "ask", "type": "llm_call", "config": {"connection_id": connection_id, "model": "m", "prompt": "p"}},
        ],
        name="Shared",
    )


def test_export_file_has_no_secret_or_local_id(store: Store, tmp_path: Path) -> None:
    vault = SecretVault("local", MemoryKeyring())
    connection = create_connection(store, vault, "OpenAI Work", "api_key", provider="openai", secret=SECRET)
    instance_id = store.add_mcp_instance(name="GitHub", transport="http", url=GITHUB_URL)
    workflow = graph_workflow(instance_id, connection.id)
    library.publish(store, workflow, "v1")

    out = tmp_path / "shared.json"
    out.write_text(library.export_workflow(store, workflow).to_json(), encoding="utf-8")
    text = out.read_text(encoding="utf-8")
    local_ids = {instance_id, connection.id, workflow.id, store.workspace_id, store.project_id}
    local_ids |= {f"connection/{connection.id}"}

    assert SECRET not in text
    for local_id in local_ids:
        assert local_id not in text
    assert '"run' not in text
    assert json.loads(text)["servers"][0]["server_url"] == GITHUB_URL


def test_import_creates_a_new_draft(store: Store) -> None:
    vault = SecretVault("local", MemoryKeyring())
    connection = create_connection(store, vault, "OpenAI Work", "api_key", provider="openai", secret=SECRET)
    instance_id = store.add_mcp_instance(name="GitHub", transport="http", url=GITHUB_URL)
    original = graph_workflow(instance_id, connection.id)
    graph = parse_shared_graph(library.export_workflow(store, original).to_json())

    mapping = library.match_local(store, graph)
    imported = library.import_graph(store, graph, mapping)

    assert mapping == ImportMapping(servers={GITHUB_URL: instance_id}, slots={"openai-work": connection.id})
    assert imported.id != original.id
    assert store.get_draft(imported.id) == imported
    issues = imported.step("issues")
    ask = imported.step("ask")
    assert isinstance(issues, McpCallStep)
    assert isinstance(ask, LlmCallStep)
    assert issues.config.instance_id == instance_id
    assert ask.config.connection_id == connection.id
    assert library.list_draft_revisions(store, imported.id)[0].reason == "import"


def test_import_rejects_unknown_ids(store: Store) -> None:
    instance_id = store.add_mcp_instance(name="GitHub", transport="http", url=GITHUB_URL)
    graph = library.export_workflow(
        store, document([{"id": "issues", "type": "mcp_call", "config": {"instance_id": instance_id, "tool": "t"}}])
    )

    with pytest.raises(SharedGraphError, match="MCP instance 'not-here' was not found"):
        library.import_graph(store, graph, ImportMapping(servers={GITHUB_URL: "not-here"}))


def test_unknown_project_is_rejected(store: Store) -> None:
    with pytest.raises(NotFoundError, match="project 'nope' was not found"):
        library.create_workflow(store, "Lost", project_id="nope")

    assert library.list_workflows(store) == []


def test_export_contains_no_stored_id(store: Store) -> None:
    vault = SecretVault("local", MemoryKeyring())
    connection = create_connection(store, vault, "Token", "bearer", secret=SECRET)
    instance_id = store.add_mcp_instance(name="GitHub", transport="http", url=GITHUB_URL)
    workflow = graph_workflow(instance_id, connection.id)
    workflow = workflow.model_copy(update={"steps": [*workflow.steps, *document([lua("local")]).steps]})
    library.publish(store, workflow, "v1")
    library.save_run_defaults(store, workflow, {"x": 1})

    text = library.export_workflow(store, workflow).to_json()
    stored_ids: set[str] = set()
    with store.engine.connect() as connection_handle:
        for table in metadata.sorted_tables:
            if "id" in table.c:
                values = connection_handle.execute(table.select().with_only_columns(table.c.id)).scalars()
                # Integer row ids (such as event ids) are short numbers that any JSON text may contain.
                stored_ids.update(value for value in values if isinstance(value, str))

    assert stored_ids
    assert SECRET not in text
    assert [stored_id for stored_id in stored_ids if stored_id in text] == []


def test_instance_binding_becomes_server_slot(store: Store) -> None:
    vault = SecretVault("local", MemoryKeyring())
    token = create_connection(store, vault, "GitHub token", "bearer", secret=SECRET)
    instance_id = store.add_mcp_instance(name="GitHub", transport="http", url=GITHUB_URL)
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO mcp_instance_bindings (instance_id, target, name, connection_id) "
                "VALUES (:instance, 'header', 'Authorization', :connection)"
            ),
            {"instance": instance_id, "connection": token.id},
        )
    workflow = document([{"id": "issues", "type": "mcp_call", "config": {"instance_id": instance_id, "tool": "t"}}])

    assert library.local_instances(store)[0].connection_ids == (token.id,)
    graph = parse_shared_graph(library.export_workflow(store, workflow).to_json())
    slot = graph.credentials[0]
    mapping = library.match_local(store, graph)

    assert (slot.slot, slot.kind, slot.server_url, slot.steps) == ("github-token", "bearer", GITHUB_URL, [])
    assert token.id not in graph.to_json()
    assert mapping.missing(graph) == []
    assert mapping.slots == {}


def test_restore_draft_revision(store: Store) -> None:
    workflow = document([lua("a")])
    library.save_draft(store, workflow)
    library.save_draft(store, workflow.model_copy(update={"description": "second"}))

    restored = library.restore_draft_revision(store, workflow.id, 1)
    revisions = library.list_draft_revisions(store, workflow.id)

    assert restored == workflow
    assert store.get_draft(workflow.id) == workflow
    assert [(item.revision, item.reason) for item in revisions] == [(3, "restore-draft"), (2, "save"), (1, "save")]
    with pytest.raises(NotFoundError, match="has no draft revision 9; saved revisions: 1, 2, 3"):
        library.restore_draft_revision(store, workflow.id, 9)


def test_stdio_servers_keep_their_arguments(store: Store) -> None:
    first = store.add_mcp_instance(name="A", transport="stdio", command="npx", args=["-y", "server-a"])
    second = store.add_mcp_instance(name="B", transport="stdio", command="npx", args=["-y", "server-b"])
    workflow = document(
        [
            {"id": "one", "type": "mcp_call", "config": {"instance_id": first, "tool": "t"}},
            {"id": "two", "type": "mcp_call", "config": {"instance_id": second, "tool": "t"}},
        ]
    )

    graph = library.export_workflow(store, workflow)
    mapping = library.match_local(store, graph)

    assert [server.server_url for server in graph.servers] == ["stdio:npx -y server-a", "stdio:npx -y server-b"]
    assert mapping.servers == {"stdio:npx -y server-a": first, "stdio:npx -y server-b": second}


def test_ambiguous_name_lists_the_ids(store: Store) -> None:
    first = library.create_workflow(store, "Twice")
    second = library.create_workflow(store, "Twice")

    with pytest.raises(StoreError) as raised:
        library.find_workflow(store, "Twice")

    message = str(raised.value)
    assert "workflow 'Twice' matches 2 workflows" in message
    assert first.id in message
    assert second.id in message
