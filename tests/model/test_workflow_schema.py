"""Tests of the workflow JSON Schema and of the example workflows shipped in resources/examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from test_document_io import rich_workflow

from studio.model.document import load_workflow, workflow_to_data
from studio.model.schema import DEFAULT_PATH, main, workflow_json_schema
from studio.model.validation import validate_workflow

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPOSITORY / "resources" / "examples").glob("*.workflow.json"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = workflow_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schema_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "studio.model.schema", "--check"], cwd=REPOSITORY, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert DEFAULT_PATH == REPOSITORY / "resources" / "schemas" / "workflow.schema.json"


def test_check_detects_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "workflow.schema.json"
    assert main(["--check", "--output", str(path)]) == 1
    assert main(["--output", str(path)]) == 0
    assert main(["--check", "--output", str(path)]) == 0
    path.write_text(path.read_text(encoding="utf-8").replace('"steps"', '"stepz"', 1), encoding="utf-8")
    assert main(["--check", "--output", str(path)]) == 1
    assert "out of date" in capsys.readouterr().err


def test_schema_has_identity() -> None:
    schema = workflow_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("urn:workflow-studio:schema:workflow:")
    assert schema["title"]
    assert "schema_version" in schema["required"]


def test_saved_document_matches_schema(validator: jsonschema.Draft202012Validator) -> None:
    errors = list(validator.iter_errors(workflow_to_data(rich_workflow())))
    assert errors == []


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"name": "x"}, "'schema_version' is a required property"),
        ({"schema_version": 2}, "is not one of [1]"),
        ({"schema_version": 1, "steps": [{"id": "a"}]}, "'type' is a required property"),
        ({"schema_version": 1, "steps": [{"id": "a", "type": "http_call"}]}, "is not valid under any"),
        ({"schema_version": 1, "steps": [{"id": "A b", "type": "llm_call"}]}, "does not match"),
        ({"schema_version": 1, "extra": True}, "Additional properties are not allowed"),
    ],
)
def test_schema_rejects_invalid_documents(
    validator: jsonschema.Draft202012Validator, document: dict[str, Any], fragment: str
) -> None:
    messages = [error.message for error in validator.iter_errors(document)]
    messages += [cause.message for error in validator.iter_errors(document) for cause in error.context or []]
    assert any(fragment in message for message in messages), messages


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_is_valid(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    schema_errors = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(data)]
    assert schema_errors == []
    findings = validate_workflow(load_workflow(path))
    assert [finding for finding in findings if finding.severity == "error"] == []
