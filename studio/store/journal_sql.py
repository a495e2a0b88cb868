"""The journal's write path: batches of run state changes committed with prepared SQL.

JSON columns are encoded here the way SQLAlchemy's JSON type reads them back (``json.dumps``
text, SQL NULL for None), so rows written on this path and through the tables read the same.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.store.checkpoint import WalCheckpointer
from studio.store.database import BUSY_TIMEOUT_MS, configure_connection

logger = logging.getLogger(__name__)

_STEP_COLUMNS = (
    "run_id", "step_key", "step_id", "step_type", "status", "attempt",
    "inputs", "result", "error", "started_at", "finished_at",
)  # fmt: skip

# Rendered inputs and the start time are written when an attempt starts. Later rows of the
# same step leave them out (None), so COALESCE keeps the stored values.
STEP_UPSERT_SQL = (
    f"INSERT INTO step_runs ({', '.join(_STEP_COLUMNS)}) VALUES ({', '.join('?' * len(_STEP_COLUMNS))}) "
    "ON CONFLICT (run_id, step_key) DO UPDATE SET status = excluded.status, attempt = excluded.attempt, "
    "result = excluded.result, error = excluded.error, finished_at = excluded.finished_at, "
    "inputs = COALESCE(excluded.inputs, step_runs.inputs), "
    "started_at = COALESCE(excluded.started_at, step_runs.started_at)"
)

_COALESCED_STEP_COLUMNS = ("inputs", "started_at")
"""Step columns that a later row of the same step leaves as they are when it has no value."""

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
_TASK_JSON = frozenset({"fields", "context", "values"})


# Encoders made once: json.dumps with any option set builds a new encoder on each call.
_encode = json.JSONEncoder(ensure_ascii=False).encode
_encode_ascii = json.JSONEncoder().encode


def _json(value: Any) -> str | None:
    return None if value is None else _encode(value)


def step_params(row: dict[str, Any]) -> tuple[Any, ...]:
    # Spelled out in _STEP_COLUMNS order: a loop over the names made a batch of 1,000 steps 40% slower.
    get = row.get
    return (
        row["run_id"],
        row["step_key"],
        get("step_id"),
        get("step_type"),
        get("status"),
        get("attempt"),
        _json(get("inputs")),
        _json(get("result")),
        _json(get("error")),
        get("started_at"),
        get("finished_at"),
    )


def event_params(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["run_id"], row["seq"], row["type"], row["step_key"], row["at"], _encode_ascii(row["data"]))


def usage_params(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(json.dumps(row[name]) if name == "detail" else row.get(name) for name in _USAGE_COLUMNS)


def run_param(name: str, value: Any) -> Any:
    return _json(value) if name in _RUN_JSON else value


def task_insert(row: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    names = sorted(row)
    sql = f"INSERT INTO human_tasks ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    return sql, tuple(_json(row[name]) if name in _TASK_JSON else row[name] for name in names)


def _prepare(batch: JournalBatch, scope: dict[str, str]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Return the statements that write ``batch``, each with its encoded parameter rows."""
    statements: list[tuple[str, list[tuple[Any, ...]]]] = []
    if batch.step_rows:
        statements.append((STEP_UPSERT_SQL, [step_params(row) for row in batch.step_rows]))
    if batch.event_rows:
        statements.append((EVENT_INSERT_SQL, [event_params(row) for row in batch.event_rows]))
    if batch.usage_rows:
        statements.append((USAGE_INSERT_SQL, [usage_params({**scope, **row}) for row in batch.usage_rows]))
    if batch.run_changes:
        names = sorted(batch.run_changes)
        assignments = ", ".join(f"{name} = ?" for name in names)
        values = [run_param(name, batch.run_changes[name]) for name in names]
        statements.append((f"UPDATE runs SET {assignments} WHERE id = ?", [(*values, batch.run_id)]))
    for row in batch.task_rows:
        sql, params = task_insert({**scope, **row})
        statements.append((sql, [params]))
    return statements


@dataclass
class JournalBatch:
    """State changes of one run that are committed together, before any of them is announced."""

    run_id: str
    step_rows: list[dict[str, Any]] = field(default_factory=list)
    run_changes: dict[str, Any] = field(default_factory=dict)
    event_rows: list[dict[str, Any]] = field(default_factory=list)
    task_rows: list[dict[str, Any]] = field(default_factory=list)
    usage_rows: list[dict[str, Any]] = field(default_factory=list)
    _step_row_at: dict[str, int] = field(default_factory=dict, repr=False)
    """Position in ``step_rows`` of each step key's row."""

    def add_step_row(self, row: dict[str, Any]) -> None:
        """Add a step row, merged into the batch's earlier row of the same step as the upsert would merge them.

        A step that starts and ends before the next commit (a pure step, or a fast item of a
        for_each) then costs one row to encode and write instead of two.
        """
        key = row["step_key"]
        at = self._step_row_at.get(key)
        if at is None:
            self._step_row_at[key] = len(self.step_rows)
            self.step_rows.append(row)
            return
        earlier = self.step_rows[at]
        merged = dict(row)
        for name in _COALESCED_STEP_COLUMNS:
            if merged.get(name) is None:
                merged[name] = earlier.get(name)
        self.step_rows[at] = merged

    def __bool__(self) -> bool:
        return bool(self.step_rows or self.run_changes or self.event_rows or self.task_rows or self.usage_rows)


class JournalWriter:
    """A sqlite3 connection of its own that commits journal batches.

    This is the engine's hot path (one commit per scheduling pass), so it bypasses SQLAlchemy: a
    plain ``BEGIN IMMEDIATE`` ... ``COMMIT`` with prepared statements costs about half of the same
    transaction through a pooled SQLAlchemy connection (``bench/bench_engine.py``).
    """

    def __init__(self, path: Path) -> None:
        # check_same_thread is off because the writer thread commits too, and a store may be closed
        # from another thread than the one that opened it. The lock keeps commits from overlapping.
        self._connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        configure_connection(self._connection)
        # Copies the WAL into the database file between commits, so that the checkpoints SQLite
        # makes inside commits here find little left to copy (studio.store.checkpoint explains why).
        self._checkpointer = WalCheckpointer(path)
        # Commits from the calling thread and from the background thread share one connection, so
        # they take turns: a transaction never interleaves with another.
        self._lock = threading.Lock()
        self._background: ThreadPoolExecutor | None = None

    def submit(self, batch: JournalBatch, scope: dict[str, str]) -> Future[None]:
        """Commit ``batch`` on the writer's background thread; the future completes once it is durable.

        Batches submitted from one thread are committed in submission order (one worker thread).
        The rows are encoded on the calling thread first, so the writer thread mostly waits for
        SQLite, which runs without the GIL, and the caller's thread keeps working meanwhile.
        """
        if self._background is None:
            self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio-journal")
        return self._background.submit(self._write, _prepare(batch, scope))

    def commit(self, batch: JournalBatch, scope: dict[str, str]) -> None:
        """Write ``batch`` in one transaction; ``scope`` supplies workspace and project ids for new rows."""
        self._write(_prepare(batch, scope))

    def _write(self, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    if len(params) == 1:
                        cursor.execute(sql, params[0])
                    else:
                        cursor.executemany(sql, params)
                cursor.execute("COMMIT")
                self._checkpointer.notify()
            except BaseException:
                if self._connection.in_transaction:
                    cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()

    def close(self) -> None:
        if self._background is not None:
            self._background.shutdown(wait=True)
            self._background = None
        self._checkpointer.close()
        with self._lock:
            self._connection.close()
