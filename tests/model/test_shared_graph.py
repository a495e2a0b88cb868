"""Tests of shared-graph export and import: local ids left out, slots, error paths, matching and binding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from studio.model.document import workflow_from_data
from studio.model.shared_graph import (
    ImportMapping,
    LocalConnection,
    LocalInstance,
    SharedGraphError,
    export_shared_graph,
    instantiate,
    load_shared_graph,
    match_requirements,
    parse_shared_graph,
    server_url_of_instance,
    slot_name,
)
from studio.model.workflow import LlmCallStep, McpCallStep, Workflow

GITHUB_URL = "https://mcp.example.test/github"
INSTANCE_ID = "5f1c7a52-instance-local"
CONNECTION_ID = "0b9e2d11-connection-local"
OTHER_CONNECTION_ID = "77aa31f0-connection-other"

INSTANCES = {INSTANCE_ID: LocalInstance(INSTANCE_ID, "GitHub (work)", GITHUB_URL)}
CONNECTIONS = {
    CONNECTION_ID: LocalConnection(CONNECTION_ID, "OpenAI Work", "api_key", "openai"),
    OTHER_CONNECTION_ID: LocalConnection(OTHER_CONNECTION_ID, "GitHub token", "bearer"),
}


def source_workflow() -> Workflow:
    return workflow_from_data(
        {
            "schema_version": 1,
            "id": "local-workflow-id",
            "name": "Triage issues",
            "steps": [
                {
                    "id": "issues",
                    "type": "mcp_call",
                    "config": {"instance_id": INSTANCE_ID, "tool": "list_issues", "arguments": {"state": "open"}},
                },
                {
                    "id": "loop",
                    "type": "for_each",
                    "config": {
                        "items": "{{steps.issues.result}}",
                        "steps": [
                            {
                                "id": "classify",
                                "type": "llm_call",
                                "config": {"connection_id": CONNECTION_ID, "model": "m", "prompt": "{{item}}"},
                            }
                        ],
                    },
                },
                {
                    "id": "summary",
                    "type": "llm_call",
                    "config": {"connection_id": CONNECTION_ID, "model": "m", "prompt": "sum"},
                },
                {
                    "id": "time",
                    "type": "mcp_call",
                    "config": {"server_url": "stdio:mcp-server-time", "tool": "get_current_time"},
                },
            ],
            "edges": [{"source": "loop", "target": "summary"}],
        },
        "test",
    )


def test_export_strips_local_ids() -> None:
    graph = export_shared_graph(source_workflow(), INSTANCES, CONNECTIONS)
    text = graph.to_json()

    assert INSTANCE_ID not in text
    assert CONNECTION_ID not in text
    assert "local-workflow-id" not in text
    assert "instance_id" not in text
    assert "connection_id" not in text
    assert json.loads(text)["schema_version"] == 1


def test_export_lists_servers_and_slots() -> None:
    graph = export_shared_graph(source_workflow(), INSTANCES, CONNECTIONS)

    servers = {server.server_url: server for server in graph.servers}
    assert set(servers) == {GITHUB_URL, "stdio:mcp-server-time"}
    assert servers[GITHUB_URL].tools == ["list_issues"]
    assert servers[GITHUB_URL].name == "GitHub (work)"
    assert [slot.model_dump() for slot in graph.credentials] == [
        {
            "slot": "openai-work",
            "kind": "api_key",
            "provider": "openai",
            "steps": ["classify", "summary"],
            "server_url": None,
        }
    ]
    issues = graph.workflow["steps"][0]
    assert issues["config"]["server_url"] == GITHUB_URL


def test_export_names_step_without_server() -> None:
    step = {"id": "orphan", "type": "mcp_call", "config": {"instance_id": "missing-instance", "tool": "t"}}
    broken = workflow_from_data({"schema_version": 1, "name": "Broken", "steps": [step]}, "test")

    with pytest.raises(SharedGraphError) as raised:
        export_shared_graph(broken, INSTANCES, CONNECTIONS)

    assert raised.value.problems[0][0] == "steps[0].config"
    assert "missing-instance" in raised.value.problems[0][1]


def test_export_names_unknown_connection() -> None:
    with pytest.raises(SharedGraphError) as raised:
        export_shared_graph(source_workflow(), INSTANCES, {})

    paths = [path for path, _message in raised.value.problems]
    assert paths == ["steps[1].config.steps[0].config.connection_id", "steps[2].config.connection_id"]


def test_round_trip_gives_fresh_id_and_bindings() -> None:
    graph = parse_shared_graph(export_shared_graph(source_workflow(), INSTANCES, CONNECTIONS).to_json())
    mapping = ImportMapping(
        servers={GITHUB_URL: "new-instance", "stdio:mcp-server-time": None}, slots={"openai-work": "new-conn"}
    )

    first = instantiate(graph, mapping)
    second = instantiate(graph, mapping)

    assert first.id != "local-workflow-id"
    assert first.id != second.id
    issues = first.step("issues")
    assert isinstance(issues, McpCallStep)
    assert issues.config.instance_id == "new-instance"
    assert issues.config.server_url == GITHUB_URL
    time_step = first.step("time")
    assert isinstance(time_step, McpCallStep)
    assert time_step.config.instance_id is None
    classify = first.step("classify")
    assert isinstance(classify, LlmCallStep)
    assert classify.config.connection_id == "new-conn"
    assert [(edge.source, edge.target) for edge in first.edges] == [("loop", "summary")]


def test_instantiate_requires_every_choice() -> None:
    graph = export_shared_graph(source_workflow(), INSTANCES, CONNECTIONS)

    with pytest.raises(SharedGraphError) as raised:
        instantiate(graph, ImportMapping(servers={GITHUB_URL: None}))

    text = str(raised.value)
    assert "server stdio:mcp-server-time" in text
    assert "credential slot openai-work" in text


def test_instantiate_rejects_unknown_local_ids() -> None:
    graph = export_shared_graph(source_workflow(), INSTANCES, CONNECTIONS)
    mapping = ImportMapping(
        servers={GITHUB_URL: "gone", "stdio:mcp-server-time": None}, slots={"openai-work": CONNECTION_ID}
    )

    with pytest.raises(SharedGraphError) as raised:
        instantiate(graph, mapping, instance_ids=[INSTANCE_ID], connection_ids=[CONNECTION_ID])

    assert raised.value.problems == [
        (
            f"servers.{GITHUB_URL}",
            "MCP instance 'gone' was not found; choose an existing MCP instance or leave it unbound",
        )
    ]


def test_matching_takes_only_unambiguous_candidates() -> None:
    graph = export_shared_graph(source_workflow(), INSTANCES, CONNECTIONS)
    instances = [LocalInstance("a", "A", GITHUB_URL), LocalInstance("b", "B", "stdio:mcp-server-time")]
    instances += [LocalInstance("c", "C", "stdio:mcp-server-time")]
    connections = [LocalConnection("x", "Personal", "api_key", "openai"), LocalConnection("y", "Token", "bearer")]

    mapping = match_requirements(graph, instances, connections)

    assert mapping.servers == {GITHUB_URL: "a"}
    assert mapping.slots == {"openai-work": "x"}


def test_matching_prefers_the_slot_name() -> None:
    graph = export_shared_graph(source_workflow(), INSTANCES, CONNECTIONS)
    connections = [
        LocalConnection("x", "Personal", "api_key", "openai"),
        LocalConnection("y", "openai work", "api_key", "openai"),
    ]

    assert match_requirements(graph, [], connections).slots == {"openai-work": "y"}
    assert match_requirements(graph, [], connections[:1] * 2).slots == {}


def test_matching_never_guesses_another_provider() -> None:
    graph = export_shared_graph(source_workflow(), INSTANCES, CONNECTIONS)
    mcp_token = LocalConnection("z", "github GITHUB_TOKEN", "api_key", None)
    anthropic = LocalConnection("a", "Claude", "api_key", "anthropic")

    assert match_requirements(graph, [], [mcp_token]).slots == {}
    assert match_requirements(graph, [], [anthropic]).slots == {}
    assert match_requirements(graph, [], [LocalConnection("n", "OpenAI Work", "api_key", None)]).slots == {
        "openai-work": "n"
    }


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "graph.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def exported_data() -> dict[str, Any]:
    return json.loads(export_shared_graph(source_workflow(), INSTANCES, CONNECTIONS).to_json())


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (lambda d: d["workflow"]["steps"][0]["config"].update(tool=5), "workflow.steps[0].config.tool", "string"),
        (lambda d: d["workflow"]["steps"][0].update(type="shell"), "workflow.steps[0]", "unknown step type"),
        (lambda d: d["credentials"][0].update(slot="Bad Slot"), "credentials[0].slot", "invalid slot name"),
        (lambda d: d["credentials"][0].update(kind="password"), "credentials[0].kind", "api_key"),
        (lambda d: d["credentials"][0]["steps"].append("nope"), "credentials[0].steps[2]", "'nope'"),
        (lambda d: d.update(extra=1), "extra", "unknown field"),
        (
            lambda d: d["credentials"].append({"slot": "other", "kind": "bearer", "steps": ["summary"]}),
            "credentials[1].steps[0]",
            "listed in slot 'openai-work' already",
        ),
        (lambda d: d.update(schema_version=9), "schema_version", "not supported"),
        (lambda d: d.pop("format"), "format", "shared-graph"),
        (lambda d: d["servers"].pop(0), "workflow.steps[0].config.server_url", "not listed"),
        (
            lambda d: d["workflow"]["steps"][0]["config"].update(instance_id="x"),
            "workflow.steps[0].config.instance_id",
            "local MCP instance",
        ),
        (
            lambda d: d["workflow"]["steps"][1]["config"]["steps"][0]["config"].update(connection_id="x"),
            "workflow.steps[1].config.steps[0].config.connection_id",
            "slot",
        ),
        (lambda d: d["workflow"]["steps"][3].update(id="classify"), "workflow.steps[3].id", "is used by"),
        (
            lambda d: d["workflow"]["edges"].append({"source": "summary", "target": "ghost"}),
            "workflow.edges[1].target",
            "'ghost'",
        ),
        (
            lambda d: (
                d["workflow"]["steps"][1]["config"]
                .setdefault("edges", [])
                .append({"source": "classify", "target": "gone"})
            ),
            "workflow.steps[1].config.edges[0].target",
            "'gone'",
        ),
        (lambda d: d["servers"].append(dict(d["servers"][0])), "servers[2].server_url", "listed twice"),
        (lambda d: d["servers"][0]["steps"].append("summary"), "servers[0].steps[1]", "'summary'"),
    ],
)
def test_invalid_files_name_the_path(tmp_path: Path, change: Any, path: str, fragment: str) -> None:
    data = exported_data()
    change(data)

    with pytest.raises(SharedGraphError) as raised:
        load_shared_graph(write(tmp_path, data))

    paths = [problem_path for problem_path, _message in raised.value.problems]
    assert path in paths
    assert fragment in str(raised.value)
    assert str(tmp_path / "graph.json") in str(raised.value)


def test_malformed_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(SharedGraphError, match="line 1, column 2"):
        load_shared_graph(write(tmp_path, "{oops"))
    with pytest.raises(SharedGraphError, match="file not found"):
        load_shared_graph(tmp_path / "absent.json")


def test_workflow_file_is_told_apart(tmp_path: Path) -> None:
    data = source_workflow().model_dump(mode="json")

    with pytest.raises(SharedGraphError, match="looks like a workflow file"):
        load_shared_graph(write(tmp_path, data))


def test_server_url_of_instance_rows() -> None:
    assert server_url_of_instance({"server_url": "https://a", "url": "https://b"}) == "https://a"
    assert server_url_of_instance({"url": "https://b", "command": "x"}) == "https://b"
    assert server_url_of_instance({"command": "uvx", "args": ["mcp-server-time", "--tz", "a b"]}) == (
        "stdio:uvx mcp-server-time --tz 'a b'"
    )
    assert server_url_of_instance({"command": None}) is None


def test_slot_names() -> None:
    assert slot_name("OpenAI Work") == "openai-work"
    assert slot_name("  ") == "credential"
    assert slot_name("GitHub/Token #2") == "github-token-2"


def test_server_credential_becomes_server_slot() -> None:
    instances = {INSTANCE_ID: LocalInstance(INSTANCE_ID, "GitHub", GITHUB_URL, (OTHER_CONNECTION_ID,))}

    graph = parse_shared_graph(export_shared_graph(source_workflow(), instances, CONNECTIONS).to_json())
    slots = {slot.slot: slot for slot in graph.credentials}

    assert slots["github-token"].kind == "bearer"
    assert slots["github-token"].server_url == GITHUB_URL
    assert slots["github-token"].steps == []
    assert OTHER_CONNECTION_ID not in graph.to_json()
    assert ImportMapping(servers={GITHUB_URL: None}).missing(graph) == [
        "server stdio:mcp-server-time",
        "credential slot openai-work",
    ]


@pytest.mark.parametrize(
    ("server_url", "secret"),
    [
        ("stdio:npx -y @smithery/cli run x --key sk-ArgSecret12345", "sk-ArgSecret12345"),
        ("stdio:srv --token=opaque-Token-777", "opaque-Token-777"),
        ("stdio:srv --api-key opaque-Key-888", "opaque-Key-888"),
        ("https://mcp.example.test/sse?token=UrlSecret99&x=1", "UrlSecret99"),
        ("https://user:PassWord55@mcp.example.test/mcp", "PassWord55"),
    ],
)
def test_export_refuses_secret_in_server_url(server_url: str, secret: str) -> None:
    instances = {INSTANCE_ID: LocalInstance(INSTANCE_ID, "Leaky", server_url)}
    workflow = workflow_from_data(
        {
            "schema_version": 1,
            "name": "Leak",
            "steps": [{"id": "call", "type": "mcp_call", "config": {"instance_id": INSTANCE_ID, "tool": "t"}}],
        },
        "test",
    )

    with pytest.raises(SharedGraphError) as raised:
        export_shared_graph(workflow, instances, {})

    assert [path for path, _message in raised.value.problems] == ["steps[0].config"]
    assert "secret" in str(raised.value)
    assert secret not in str(raised.value)


def test_export_keeps_plain_server_urls() -> None:
    server_urls = ["stdio:mcp-server-time --local-timezone=UTC", "https://mcp.example.test/mcp?region=eu"]
    for server_url in server_urls:
        instances = {INSTANCE_ID: LocalInstance(INSTANCE_ID, "Plain", server_url)}
        workflow = workflow_from_data(
            {
                "schema_version": 1,
                "name": "Plain",
                "steps": [{"id": "call", "type": "mcp_call", "config": {"instance_id": INSTANCE_ID, "tool": "t"}}],
            },
            "test",
        )

        assert export_shared_graph(workflow, instances, {}).servers[0].server_url == server_url


def test_deeply_nested_for_each_round_trip() -> None:
    step: dict[str, Any] = {"id": "leaf", "type": "lua_script", "config": {"source": "return 1"}}
    for level in range(150):
        step = {"id": f"loop-{level}", "type": "for_each", "config": {"items": [1], "steps": [step]}}
    workflow = workflow_from_data({"schema_version": 1, "name": "Deep", "steps": [step]}, "test")

    text = export_shared_graph(workflow, {}, {}).to_json()
    imported = instantiate(parse_shared_graph(text), ImportMapping())

    assert imported.step("leaf") is not None
    assert imported.step("loop-0") is not None


@pytest.mark.parametrize(
    ("step", "path"),
    [
        (
            {
                "id": "call",
                "type": "mcp_call",
                "config": {"server_url": "https://h/mcp", "arguments": {"key": "sk-proj-AbCdEf0123456789xyz"}},
            },
            "steps[0].config.arguments.key",
        ),
        (
            {
                "id": "script",
                "type": "lua_script",
                "config": {"source": 'local token = "ghp_AbCdEfGhIjKlMnOpQrStUvWx0123"'},
            },
            "steps[0].config.source",
        ),
    ],
)
def test_export_refuses_credential_in_document(step: dict[str, Any], path: str) -> None:
    workflow = workflow_from_data({"schema_version": 1, "name": "Pasted key", "steps": [step]}, "test")

    with pytest.raises(SharedGraphError) as raised:
        export_shared_graph(workflow, {}, {})

    assert [problem_path for problem_path, _message in raised.value.problems] == [path]
    assert "credential" in str(raised.value)
    assert "AbCdEf" not in str(raised.value)


def test_export_keeps_text_that_mentions_key_prefixes() -> None:
    step = {
        "id": "ask",
        "type": "llm_call",
        "config": {"model": "m", "prompt": "OpenAI keys start with sk- and a project"},
    }
    workflow = workflow_from_data({"schema_version": 1, "name": "Docs", "steps": [step]}, "test")

    assert export_shared_graph(workflow, {}, {}).workflow["steps"][0]["config"]["prompt"].startswith("OpenAI")
