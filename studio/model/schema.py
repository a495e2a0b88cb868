"""JSON Schema of the workflow file format, generated from the pydantic models.

Run ``python -m studio.model.schema`` to write ``resources/schemas/workflow.schema.json``, or add
``--check`` to exit with status 1 when the committed file differs from the models.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from studio.model.workflow import SCHEMA_VERSION, SUPPORTED_SCHEMA_VERSIONS, Workflow

logger = logging.getLogger(__name__)

SCHEMA_ID = f"urn:workflow-studio:schema:workflow:{SCHEMA_VERSION}"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "resources" / "schemas" / "workflow.schema.json"


def workflow_json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of a workflow file as this release reads it.

    On top of what pydantic derives from the models, it requires what the loader requires:
    ``schema_version`` (one of the supported versions) at the top level and ``type`` on every step
    (the discriminator).
    """
    generated = Workflow.model_json_schema()
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Workflow Studio workflow",
        "description": (
            f"A workflow document of schema_version {SCHEMA_VERSION}: steps, edges, run input schema and "
            "canvas notes. Files end in .workflow.json."
        ),
    }
    schema.update({key: value for key, value in generated.items() if key not in ("title", "description")})
    _require(schema, "schema_version")
    schema["properties"]["schema_version"]["enum"] = sorted(SUPPORTED_SCHEMA_VERSIONS)
    for name, definition in schema.get("$defs", {}).items():
        if name.endswith("Step") and "type" in definition.get("properties", {}):
            _require(definition, "type")
    return schema


def _require(definition: dict[str, Any], name: str) -> None:
    required: list[str] = definition.setdefault("required", [])
    if name not in required:
        required.append(name)


def schema_text() -> str:
    """Return the schema text as committed: indented JSON ending with a newline."""
    return json.dumps(workflow_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema file, or with ``--check`` compare it; return the process exit status."""
    parser = argparse.ArgumentParser(description="Write or check the JSON Schema of workflow files.")
    parser.add_argument("--check", action="store_true", help="exit with status 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="schema file path (default: %(default)s)")
    arguments = parser.parse_args(argv)
    path: Path = arguments.output
    expected = schema_text()
    if arguments.check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != expected:
            sys.stderr.write(
                f"{path} is out of date with the workflow models; regenerate it with "
                "'python -m studio.model.schema' and commit the result.\n"
            )
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(expected, encoding="utf-8")
    logger.info("wrote the workflow JSON Schema to %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
