"""Prepared SQL for the journal's frequent writes: step run upserts, events and usage rows.

JSON columns are encoded here the way SQLAlchemy's JSON type reads them back (``json.dumps``
text, SQL NULL for None), so rows written on this path and through the tables read the same.
"""

from __future__ import annotations

import json
from typing import Any

_STEP_COLUMNS = (
    "run_id", "step_key", "step_id", "step_type", "status", "attempt",
    "inputs", "result", "error", "started_at", "finished_at",
)  # fmt: skip
_STEP_JSON = frozenset({"inputs", "result", "error"})

# Rendered inputs and the start time are written when an attempt starts. Later rows of the
# same step leave them out (None), so COALESCE keeps the stored values.
STEP_UPSERT_SQL = (
    f"INSERT INTO step_runs ({', '.join(_STEP_COLUMNS)}) VALUES ({', '.join('?' * len(_STEP_COLUMNS))}) "
    "ON CONFLICT (run_id, step_key) DO UPDATE SET status = excluded.status, attempt = excluded.attempt, "
    "result = excluded.result, error = excluded.error, finished_at = excluded.finished_at, "
    "inputs = COALESCE(excluded.inputs, step_runs.inputs), "
    "started_at = COALESCE(excluded.started_at, step_runs.started_at)"
)

_EVENT_COLUMNS = ("run_id", "seq", "type", "step_key", "at", "data")
EVENT_INSERT_SQL = f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)"

_USAGE_COLUMNS = (
    "id", "workspace_id", "project_id", "run_id", "workflow_id", "step_key", "step_id",
    "kind", "quantity", "unit", "credits", "detail", "at",
)  # fmt: skip
USAGE_INSERT_SQL = (
    f"INSERT INTO usage_records ({', '.join(_USAGE_COLUMNS)}) VALUES ({', '.join('?' * len(_USAGE_COLUMNS))})"
)

_RUN_JSON = frozenset({"inputs", "result", "error"})


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def step_params(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(_json(row.get(name)) if name in _STEP_JSON else row.get(name) for name in _STEP_COLUMNS)


def event_params(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["run_id"], row["seq"], row["type"], row["step_key"], row["at"], json.dumps(row["data"]))


def usage_params(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(json.dumps(row[name]) if name == "detail" else row.get(name) for name in _USAGE_COLUMNS)


def run_param(name: str, value: Any) -> Any:
    return _json(value) if name in _RUN_JSON else value
