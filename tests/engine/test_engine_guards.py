"""Guards at run start: broken graphs, remote schema references and non-finite form numbers."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from studio.engine import Engine, EngineError, InputError
from studio.engine import engine as engine_module
from studio.engine.engine import check_form_values
from studio.model.document import workflow_from_data
from studio.model.validation import VALIDATION_REVISION
from studio.model.workflow import FormField, Workflow
from studio.store import Store


def lua(step_id: str, source: str, inputs: dict[str, object] | None = None) -> dict[str, object]:
    return {"id": step_id, "type": "lua_script", "config": {"source": source, "inputs": inputs or {}}}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {
                "steps": [
                    lua("a", "return x", {"x": "{{steps.b.result}}"}),
                    lua("b", "return x", {"x": "{{steps.a.result}}"}),
                ]
            },
            "cycle",
        ),
        ({"steps": [lua("a", "return 1"), lua("a", "return 2")]}, "unique"),
        ({"steps": [lua("a", "return 1")], "edges": [{"source": "a", "target": "ghost"}]}, "ghost"),
    ],
    ids=["cycle", "duplicate-id", "dangling-edge"],
)
async def test_invalid_graph_not_started(
    engine: tuple[Engine, object], store: Store, document: dict[str, object], expected: str
) -> None:
    studio, _log = engine
    workflow = workflow_from_data({"schema_version": 1, "name": "Broken", **document})

    with pytest.raises(EngineError) as raised:
        await studio.run_workflow(workflow)

    assert "validation error" in str(raised.value)
    assert expected in str(raised.value)
    assert store.list_runs() == []
    assert store.list_versions(workflow.id) == []


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Ids of the workflows that the engine's check_runnable is called with, in order."""
    calls: list[str] = []
    real_check = engine_module.check_runnable

    def counting_check(workflow: Workflow) -> None:
        calls.append(workflow.id)
        real_check(workflow)

    monkeypatch.setattr(engine_module, "check_runnable", counting_check)
    return calls


async def test_version_validated_once_per_content(
    engine: tuple[Engine, object], store: Store, checked: list[str]
) -> None:
    studio, _log = engine
    workflow = workflow_from_data({"schema_version": 1, "name": "Twice", "steps": [lua("a", "return 1")]})

    first = await studio.run_workflow(workflow)
    version_id = store.get_run(first).version_id
    second = await studio.start_run(version_id)

    assert (await studio.wait(first)).status == "completed"
    assert (await studio.wait(second)).status == "completed"
    # run_workflow checks the document; the version's runs reuse that check.
    assert checked == [workflow.id]
    # A different document is checked again.
    other = workflow_from_data({"schema_version": 1, "name": "Other", "steps": [lua("b", "return 2")]})
    await studio.wait(await studio.run_workflow(other))
    assert checked == [workflow.id, other.id]


async def test_marked_version_not_validated_again(store: Store, checked: list[str]) -> None:
    workflow = workflow_from_data({"schema_version": 1, "name": "Marked", "steps": [lua("a", "return 1")]})
    publisher = Engine(store)
    try:
        first = await publisher.run_workflow(workflow)
        await publisher.wait(first)
        version_id = store.get_run(first).version_id
    finally:
        await publisher.aclose()
    # A second engine, as in another process, has no memory of that check.
    runner = Engine(store)
    try:
        summary = await runner.wait(await runner.start_run(version_id))
    finally:
        await runner.aclose()

    assert store.get_version(version_id).validated_by == VALIDATION_REVISION
    assert summary.status == "completed"
    assert checked == [workflow.id]


@pytest.mark.parametrize("mark", [None, "0"], ids=["unmarked", "older-revision"])
async def test_unmarked_version_validated_before_run(
    engine: tuple[Engine, object], store: Store, mark: str | None
) -> None:
    studio, _log = engine
    broken = workflow_from_data(
        {
            "schema_version": 1,
            "name": "Broken",
            "steps": [lua("a", "return 1")],
            "edges": [{"source": "a", "target": "ghost"}],
        }
    )
    version = store.publish_workflow(broken, validated_by=mark)

    with pytest.raises(EngineError, match="ghost"):
        await studio.start_run(version.id)

    assert store.list_runs() == []


@pytest.fixture
def request_counter() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every path requested from it."""
    requested: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/schema.json", requested
    finally:
        server.shutdown()
        server.server_close()


async def test_remote_schema_ref_not_fetched(
    engine: tuple[Engine, object], request_counter: tuple[str, list[str]]
) -> None:
    studio, _log = engine
    url, requested = request_counter
    workflow = workflow_from_data(
        {
            "schema_version": 1,
            "name": "Remote ref",
            "input_schema": {"type": "object", "properties": {"topic": {"$ref": url}}},
            "steps": [lua("a", "return 1")],
        }
    )

    with pytest.raises(InputError) as raised:
        studio.validate_inputs(workflow, {"topic": "x"})

    assert "$ref" in str(raised.value)
    assert requested == []


@pytest.mark.parametrize("text", ["NaN", "inf", "-Infinity", "1e400"])
def test_number_field_rejects_non_finite(text: str) -> None:
    fields = [FormField(name="n", type="number")]

    with pytest.raises(EngineError) as raised:
        check_form_values(fields, {"n": text}, "approve")

    assert "finite" in str(raised.value)
    assert "'n'" in str(raised.value)
