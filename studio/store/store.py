"""The store: workflows, drafts, published versions, runs, their journal, human tasks and usage."""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import JsonValue
from sqlalchemy import Engine, Row, Select, Text, and_, cast, delete, func, insert, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from studio.model.document import content_hash, workflow_from_data, workflow_from_stored_json
from studio.model.metering import credits_for
from studio.model.workflow import Workflow
from studio.store import tables as t
from studio.store.database import create_sqlite_engine, migrate
from studio.store.journal_sql import JournalBatch, JournalWriter

logger = logging.getLogger(__name__)

DEFAULT_WORKSPACE_SLUG = "local"
DEFAULT_PROJECT_SLUG = "default"

RUN_ACTIVE_STATUSES = ("created", "running")
"""Run statuses that mean some process should be executing the run right now."""
RUN_FINAL_STATUSES = ("completed", "failed", "stopped")
RUN_ACTIONS = ("pause", "resume", "stop")
"""Actions another process may request on a run through :meth:`Store.request_run_action`."""
PIN_SOURCES = ("recorded", "edited")


class StoreError(Exception):
    """A store operation that cannot be done; the message names the record and the fix."""


class NotFoundError(StoreError):
    """A record that does not exist."""


def new_id() -> str:
    return str(uuid.uuid4())


def default_database_path() -> Path:
    """Return the database path: ``$STUDIO_DATA_DIR/studio.db`` or the user data directory's."""
    override = os.environ.get("STUDIO_DATA_DIR")
    base = Path(override) if override else Path(platformdirs.user_data_dir("workflow-studio", appauthor=False))
    return base / "studio.db"


@dataclass(frozen=True)
class VersionRecord:
    """A published, immutable workflow version."""

    id: str
    workflow_id: str
    number: int
    content_hash: str
    note: str
    created_at: float
    document_json: str = field(repr=False)
    """The workflow document as stored: JSON text."""
    kind: str = "published"
    """'published', or 'test' for the hidden snapshot of a draft that a test run executes."""
    validated_by: str | None = None
    """The validation revision under which the document had no errors when it was stored, or None."""

    @cached_property
    def document(self) -> dict[str, Any]:
        """The workflow document as JSON data, decoded on first use."""
        decoded: dict[str, Any] = json.loads(self.document_json)
        return decoded

    @property
    def workflow(self) -> Workflow:
        """A new Workflow parsed from the stored text (starting a run of 1,000 steps reads it in one pass)."""
        return workflow_from_stored_json(self.document_json, f"version {self.number} of workflow {self.workflow_id}")


@dataclass(frozen=True)
class RunRecord:
    id: str
    workspace_id: str
    project_id: str
    workflow_id: str
    version_id: str
    status: str
    inputs: dict[str, JsonValue]
    result: JsonValue
    error: JsonValue
    parent_run_id: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    owner: str | None
    heartbeat_at: float | None
    is_test: bool = False
    requested_action: str | None = None
    requested_at: float | None = None
    requested_by: str | None = None


@dataclass(frozen=True)
class RunRequest:
    """A pause, resume or stop that another process recorded on a run, waiting for the run's owner."""

    run_id: str
    action: str
    requested_at: float
    requested_by: str


@dataclass(frozen=True)
class PinRecord:
    """A step output that test runs of a draft use instead of executing the step."""

    workflow_id: str
    step_id: str
    value: JsonValue
    source: str
    updated_at: float


@dataclass(frozen=True)
class StepRunRecord:
    run_id: str
    step_key: str
    step_id: str
    step_type: str
    status: str
    attempt: int
    inputs: JsonValue
    result: JsonValue
    error: JsonValue
    started_at: float | None
    finished_at: float | None
    reused_from: str | None = None
    """The run whose recorded result a re-run copied, instead of executing the step again."""
    pinned: bool = False
    """Whether a test run completed the step with a pinned value instead of executing it."""


@dataclass(frozen=True)
class TaskRecord:
    """A human task: a pending approval or form, or the record of how it was resolved."""

    id: str
    workspace_id: str
    project_id: str
    run_id: str
    workflow_id: str
    step_key: str
    step_id: str
    title: str
    instructions: str
    fields: list[dict[str, JsonValue]]
    context: JsonValue
    assignee_role: str | None
    status: str
    decision: str | None
    values: dict[str, JsonValue] | None
    resolved_by: str | None
    created_at: float
    due_at: float | None
    resolved_at: float | None


_ID_PREFIX = re.compile(r"[0-9a-f-]{4,36}")


def _check_id_prefix(prefix: str, kind: str) -> None:
    """Raise StoreError unless ``prefix`` can be the start of a UUID (so it contains no LIKE wildcards)."""
    if not _ID_PREFIX.fullmatch(prefix):
        raise StoreError(
            f"{kind} id '{prefix}' is invalid; give at least 4 characters of the id "
            "(lower-case hexadecimal digits and '-')"
        )


def _record(cls: type[Any], row: Row[Any]) -> Any:
    mapping = row._mapping
    return cls(**{name: mapping[name] for name in cls.__dataclass_fields__})


def _select_versions() -> Select[Any]:
    """Select version rows with the document as its stored JSON text, which VersionRecord decodes when asked."""
    versions = t.workflow_versions
    columns = [column for column in versions.columns if column.name != "document"]
    return select(*columns, cast(versions.c.document, Text).label("document_json"))


def _version(row: Row[Any]) -> VersionRecord:
    return _record(VersionRecord, row)  # type: ignore[no-any-return]


def _version_values(record: VersionRecord) -> dict[str, Any]:
    """Return the column values of a new version row; the document is written as the record's text."""
    return {
        "id": record.id,
        "workflow_id": record.workflow_id,
        "number": record.number,
        "content_hash": record.content_hash,
        "note": record.note,
        "created_at": record.created_at,
        "document": cast(record.document_json, Text),
        "kind": record.kind,
        "validated_by": record.validated_by,
    }


class Store:
    """Synchronous access to the SQLite store.

    Calls are short transactions (tens of microseconds to a few milliseconds), so async code calls
    them directly on the event loop. Several processes may open the same file; writes queue on
    SQLite's lock.
    """

    def __init__(self, engine: Engine, path: Path | None = None) -> None:
        self.engine = engine
        self.path = path
        self._journal: JournalWriter | None = None
        self.workspace_id, self.project_id = self._ensure_defaults()

    # -- set-up -------------------------------------------------------------------------------

    def _ensure_defaults(self) -> tuple[str, str]:
        with self.engine.begin() as connection:
            workspace = connection.execute(
                select(t.workspaces.c.id).where(t.workspaces.c.slug == DEFAULT_WORKSPACE_SLUG)
            ).scalar()
            if workspace is None:
                workspace = new_id()
                connection.execute(
                    insert(t.workspaces).values(
                        id=workspace, slug=DEFAULT_WORKSPACE_SLUG, name="Local workspace", created_at=time.time()
                    )
                )
            project = connection.execute(
                select(t.projects.c.id).where(
                    and_(t.projects.c.workspace_id == workspace, t.projects.c.slug == DEFAULT_PROJECT_SLUG)
                )
            ).scalar()
            if project is None:
                project = new_id()
                connection.execute(
                    insert(t.projects).values(
                        id=project,
                        workspace_id=workspace,
                        slug=DEFAULT_PROJECT_SLUG,
                        name="Default project",
                        created_at=time.time(),
                    )
                )
        return str(workspace), str(project)

    def _scope(self) -> dict[str, str]:
        return {"workspace_id": self.workspace_id, "project_id": self.project_id}

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self.engine.dispose()

    # -- workflows, drafts and versions ---------------------------------------------------------

    def _ensure_workflow_row(self, connection: Any, workflow: Workflow) -> None:
        now = time.time()
        statement = sqlite_insert(t.workflows).values(
            id=workflow.id, name=workflow.name, created_at=now, updated_at=now, archived=False, **self._scope()
        )
        connection.execute(
            statement.on_conflict_do_update(index_elements=["id"], set_={"name": workflow.name, "updated_at": now})
        )

    def save_draft(self, workflow: Workflow) -> int:
        """Save ``workflow`` as the draft of its workflow id and return the draft's new revision."""
        document = workflow.model_dump(mode="json")
        now = time.time()
        with self.engine.begin() as connection:
            self._ensure_workflow_row(connection, workflow)
            revision = connection.execute(
                select(t.drafts.c.revision).where(t.drafts.c.workflow_id == workflow.id)
            ).scalar()
            if revision is None:
                connection.execute(
                    insert(t.drafts).values(
                        id=new_id(),
                        workflow_id=workflow.id,
                        document=document,
                        revision=1,
                        updated_at=now,
                        **self._scope(),
                    )
                )
                return 1
            connection.execute(
                update(t.drafts)
                .where(t.drafts.c.workflow_id == workflow.id)
                .values(document=document, revision=revision + 1, updated_at=now)
            )
            return int(revision) + 1

    def get_draft(self, workflow_id: str) -> Workflow | None:
        with self.engine.connect() as connection:
            document = connection.execute(
                select(t.drafts.c.document).where(t.drafts.c.workflow_id == workflow_id)
            ).scalar()
        return None if document is None else workflow_from_data(document, f"draft of workflow {workflow_id}")

    def publish_workflow(self, workflow: Workflow, note: str = "", *, validated_by: str | None = None) -> VersionRecord:
        """Publish ``workflow`` as an immutable version.

        Publishing content that is already published returns the existing version, so the same
        document always maps to one version id. A caller that has just validated ``workflow``
        without errors passes the validation revision as ``validated_by``. It is stored with the
        version, also on an existing one that had another mark, and runs of the version skip validation.
        """
        digest = content_hash(workflow)
        document_json = json.dumps(workflow.model_dump(mode="json"))
        with self.engine.begin() as connection:
            self._ensure_workflow_row(connection, workflow)
            existing = connection.execute(
                _select_versions().where(
                    and_(
                        t.workflow_versions.c.workflow_id == workflow.id,
                        t.workflow_versions.c.content_hash == digest,
                    )
                )
            ).first()
            if existing is not None:
                record = _version(existing)
                if validated_by is None or record.validated_by == validated_by:
                    return record
                connection.execute(
                    update(t.workflow_versions)
                    .where(t.workflow_versions.c.id == record.id)
                    .values(validated_by=validated_by)
                )
                return replace(record, validated_by=validated_by)
            number = connection.execute(
                select(func.coalesce(func.max(t.workflow_versions.c.number), 0)).where(
                    and_(t.workflow_versions.c.workflow_id == workflow.id, t.workflow_versions.c.kind == "published")
                )
            ).scalar_one()
            record = VersionRecord(
                id=new_id(),
                workflow_id=workflow.id,
                number=int(number) + 1,
                content_hash=digest,
                note=note,
                created_at=time.time(),
                document_json=document_json,
                validated_by=validated_by,
            )
            connection.execute(insert(t.workflow_versions).values(**_version_values(record), **self._scope()))
        logger.info("Published workflow %s version %d (%s)", workflow.id, record.number, digest)
        return record

    def save_test_snapshot(self, workflow: Workflow) -> VersionRecord:
        """Store ``workflow`` as a hidden test snapshot (kind 'test') for test runs of a draft.

        Snapshots are numbered -1, -2, ... so published version numbers stay consecutive, and their
        content hash is prefixed with ``test:`` so a snapshot is never returned as a published version.
        Saving identical content again returns the existing snapshot.
        """
        digest = "test:" + content_hash(workflow)
        document_json = json.dumps(workflow.model_dump(mode="json"))
        with self.engine.begin() as connection:
            self._ensure_workflow_row(connection, workflow)
            versions = t.workflow_versions
            existing = connection.execute(
                _select_versions().where(and_(versions.c.workflow_id == workflow.id, versions.c.content_hash == digest))
            ).first()
            if existing is not None:
                return _version(existing)
            lowest = connection.execute(
                select(func.coalesce(func.min(versions.c.number), 0)).where(
                    and_(versions.c.workflow_id == workflow.id, versions.c.kind == "test")
                )
            ).scalar_one()
            record = VersionRecord(
                id=new_id(),
                workflow_id=workflow.id,
                number=int(lowest) - 1,
                content_hash=digest,
                note="test snapshot of the draft",
                created_at=time.time(),
                document_json=document_json,
                kind="test",
            )
            connection.execute(insert(versions).values(**_version_values(record), **self._scope()))
        logger.info("Saved test snapshot %d of workflow %s", record.number, workflow.id)
        return record

    def get_version(self, version_id: str) -> VersionRecord:
        with self.engine.connect() as connection:
            row = connection.execute(_select_versions().where(t.workflow_versions.c.id == version_id)).first()
        if row is None:
            raise NotFoundError(f"workflow version '{version_id}' was not found; list versions with 'studio runs'")
        return _version(row)

    def list_versions(self, workflow_id: str) -> list[VersionRecord]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                _select_versions()
                .where(
                    and_(t.workflow_versions.c.workflow_id == workflow_id, t.workflow_versions.c.kind == "published")
                )
                .order_by(t.workflow_versions.c.number)
            ).all()
        return [_version(row) for row in rows]

    def workflow_names(self, workflow_ids: Iterable[str]) -> dict[str, str]:
        ids = list(set(workflow_ids))
        if not ids:
            return {}
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.workflows.c.id, t.workflows.c.name).where(t.workflows.c.id.in_(ids))
            ).all()
        return {row.id: row.name for row in rows}

    # -- runs -----------------------------------------------------------------------------------

    def create_run(
        self,
        version: VersionRecord,
        inputs: Mapping[str, JsonValue],
        *,
        first_event: dict[str, Any],
        parent_run_id: str | None = None,
        seed_steps: Sequence[dict[str, Any]] = (),
        seed_events: Sequence[dict[str, Any]] = (),
        owner: str | None = None,
    ) -> RunRecord:
        """Create a run in status ``created`` together with its first journal event.

        ``seed_steps`` are step_runs rows (without ``run_id``) that exist before the run starts,
        such as steps a re-run reuses or a test run pins. ``seed_events`` are their events, which
        follow ``first_event``. ``owner`` is the process that will execute the run: a run created
        without one looks abandoned to other processes until it is claimed. Everything is written
        in one transaction.
        """
        now = time.time()
        run_id = str(first_event["run_id"])
        values = {
            "id": run_id,
            "workflow_id": version.workflow_id,
            "version_id": version.id,
            "status": "created",
            "inputs": dict(inputs),
            "result": None,
            "error": None,
            "parent_run_id": parent_run_id,
            "created_at": now,
            "started_at": None,
            "finished_at": None,
            "owner": owner,
            "heartbeat_at": None if owner is None else now,
            "is_test": version.kind == "test",
            **self._scope(),
        }
        with self.engine.begin() as connection:
            connection.execute(insert(t.runs).values(**values))
            connection.execute(insert(t.events).values(**first_event))
            if seed_steps:
                connection.execute(insert(t.step_runs), [{**row, "run_id": run_id} for row in seed_steps])
            if seed_events:
                connection.execute(insert(t.events), list(seed_events))
        return self.get_run(run_id)

    def get_run(self, run_id: str) -> RunRecord:
        with self.engine.connect() as connection:
            row = connection.execute(select(t.runs).where(t.runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"run '{run_id}' was not found; list runs with 'studio runs'")
        return _record(RunRecord, row)  # type: ignore[no-any-return]

    def find_run(self, prefix: str) -> RunRecord:
        """Return the run whose id is ``prefix`` or starts with it (at least 4 characters)."""
        _check_id_prefix(prefix, "run")
        with self.engine.connect() as connection:
            rows = connection.execute(select(t.runs).where(t.runs.c.id.startswith(prefix)).limit(2)).all()
        if not rows:
            raise NotFoundError(f"run '{prefix}' was not found; list runs with 'studio runs'")
        if len(rows) > 1:
            raise StoreError(f"run id '{prefix}' is ambiguous; give more characters of the id")
        return _record(RunRecord, rows[0])  # type: ignore[no-any-return]

    def list_runs(self, *, statuses: Sequence[str] | None = None, limit: int = 50) -> list[RunRecord]:
        query = select(t.runs).order_by(t.runs.c.created_at.desc()).limit(limit)
        if statuses:
            query = query.where(t.runs.c.status.in_(list(statuses)))
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [_record(RunRecord, row) for row in rows]

    def last_event_seq(self, run_id: str) -> int:
        """Return the highest journaled event seq of a run (0 when it has none)."""
        with self.engine.connect() as connection:
            value = connection.execute(
                select(func.coalesce(func.max(t.events.c.seq), 0)).where(t.events.c.run_id == run_id)
            ).scalar_one()
        return int(value)

    def step_runs(self, run_id: str) -> dict[str, StepRunRecord]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(t.step_runs).where(t.step_runs.c.run_id == run_id)).all()
        return {row.step_key: _record(StepRunRecord, row) for row in rows}

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Return the journaled events of a run in order, as stored (JSON-ready dicts)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.events).where(t.events.c.run_id == run_id).order_by(t.events.c.seq)
            ).all()
        return [dict(row._mapping) for row in rows]

    def commit(self, batch: JournalBatch) -> None:
        """Write one run's batch of state changes in a single transaction."""
        if batch:
            self._journal_writer().commit(batch, self._scope())

    def commit_in_background(self, batch: JournalBatch) -> Future[None]:
        """Start writing ``batch`` on the journal's writer thread; the future completes once it is durable.

        Background commits are made in the order they are started, and never overlap a
        :meth:`commit` from another thread.
        """
        return self._journal_writer().submit(batch, self._scope())

    def _journal_writer(self) -> JournalWriter:
        if self._journal is None:
            self._journal = JournalWriter(self.path if self.path is not None else Path(str(self.engine.url.database)))
        return self._journal

    def claim_run(self, run_id: str, owner: str, *, expected_owner: str | None) -> bool:
        """Make ``owner`` the process executing the run if ``expected_owner`` is still its owner.

        Compare-and-set, so two processes resuming the same interrupted run cannot both win.
        """
        condition = t.runs.c.owner.is_(None) if expected_owner is None else t.runs.c.owner == expected_owner
        with self.engine.begin() as connection:
            result = connection.execute(
                update(t.runs)
                .where(and_(t.runs.c.id == run_id, condition))
                .values(owner=owner, heartbeat_at=time.time())
            )
        return bool(result.rowcount == 1)

    def release_run(self, run_id: str, owner: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(t.runs).where(and_(t.runs.c.id == run_id, t.runs.c.owner == owner)).values(owner=None)
            )

    def heartbeat(self, run_ids: Sequence[str], owner: str) -> None:
        if not run_ids:
            return
        with self.engine.begin() as connection:
            connection.execute(
                update(t.runs)
                .where(and_(t.runs.c.id.in_(list(run_ids)), t.runs.c.owner == owner))
                .values(heartbeat_at=time.time())
            )

    # -- control requests from other processes -------------------------------------------------

    def request_run_action(self, run_id: str, action: str, actor: str) -> float:
        """Record a pause, resume or stop for the run's owner to apply; return the request time.

        A newer request replaces one that was not applied yet.
        """
        if action not in RUN_ACTIONS:
            raise StoreError(f"run action '{action}' is invalid; use one of {', '.join(RUN_ACTIONS)}")
        now = time.time()
        with self.engine.begin() as connection:
            result = connection.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id)
                .values(requested_action=action, requested_at=now, requested_by=actor)
            )
        if result.rowcount != 1:
            raise NotFoundError(f"run '{run_id}' was not found; list runs with 'studio runs'")
        return now

    def run_requests(self, owner: str) -> list[RunRequest]:
        """Return the requests recorded on runs that ``owner`` executes."""
        runs = t.runs
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(runs.c.id, runs.c.requested_action, runs.c.requested_at, runs.c.requested_by).where(
                    and_(runs.c.owner == owner, runs.c.requested_action.is_not(None))
                )
            ).all()
        return [RunRequest(row.id, row.requested_action, row.requested_at, row.requested_by or "") for row in rows]

    def clear_run_request(self, run_id: str, requested_at: float) -> bool:
        """Remove the request made at ``requested_at``; False if it was replaced or removed meanwhile."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(t.runs)
                .where(and_(t.runs.c.id == run_id, t.runs.c.requested_at == requested_at))
                .values(requested_action=None, requested_at=None, requested_by=None)
            )
        return bool(result.rowcount == 1)

    # -- step pins ------------------------------------------------------------------------------

    def set_pin(self, workflow_id: str, step_id: str, value: JsonValue, *, source: str = "edited") -> PinRecord:
        """Pin ``value`` as the output of ``step_id`` in test runs of the workflow, replacing an older pin."""
        if source not in PIN_SOURCES:
            raise StoreError(f"pin source '{source}' is invalid; use one of {', '.join(PIN_SOURCES)}")
        record = PinRecord(workflow_id, step_id, value, source, time.time())
        with self.engine.begin() as connection:
            known = connection.execute(select(t.workflows.c.id).where(t.workflows.c.id == workflow_id)).scalar()
            if known is None:
                raise NotFoundError(f"workflow '{workflow_id}' was not found; save or publish it before pinning")
            statement = sqlite_insert(t.step_pins).values(**record.__dict__, **self._scope())
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["workflow_id", "step_id"],
                    set_={"value": statement.excluded.value, "source": source, "updated_at": record.updated_at},
                )
            )
        return record

    def clear_pin(self, workflow_id: str, step_id: str) -> bool:
        """Remove the pin of ``step_id``; return False when there was none."""
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(t.step_pins).where(
                    and_(t.step_pins.c.workflow_id == workflow_id, t.step_pins.c.step_id == step_id)
                )
            )
        return bool(result.rowcount == 1)

    def pins(self, workflow_id: str) -> dict[str, PinRecord]:
        """Return the workflow's pins by step id."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(t.step_pins).where(t.step_pins.c.workflow_id == workflow_id)).all()
        return {row.step_id: _record(PinRecord, row) for row in rows}

    def pin_from_run(self, run_id: str, step_id: str) -> PinRecord:
        """Pin the result that ``step_id`` recorded in a run (source 'recorded')."""
        run = self.get_run(run_id)
        record = self.step_runs(run_id).get(step_id)
        if record is None or record.status != "completed":
            state = "did not run" if record is None else f"is {record.status}"
            raise StoreError(
                f"step '{step_id}' {state} in run {run_id}; pin a step that completed, or set the value by hand"
            )
        return self.set_pin(run.workflow_id, step_id, record.result, source="recorded")

    # -- human tasks ----------------------------------------------------------------------------

    def list_tasks(self, *, statuses: Sequence[str] = ("pending",), run_id: str | None = None) -> list[TaskRecord]:
        query = select(t.human_tasks).where(t.human_tasks.c.status.in_(list(statuses)))
        if run_id is not None:
            query = query.where(t.human_tasks.c.run_id == run_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(t.human_tasks.c.created_at)).all()
        return [_record(TaskRecord, row) for row in rows]

    def get_task(self, task_id: str) -> TaskRecord:
        """Return the task whose id is ``task_id`` or starts with it (at least 4 characters)."""
        _check_id_prefix(task_id, "task")
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.human_tasks).where(t.human_tasks.c.id.startswith(task_id)).limit(2)
            ).all()
        if not rows:
            raise NotFoundError(f"human task '{task_id}' was not found; list pending tasks with 'studio tasks'")
        if len(rows) > 1:
            raise StoreError(f"task id '{task_id}' is ambiguous; give more characters of the id")
        return _record(TaskRecord, rows[0])  # type: ignore[no-any-return]

    def task_for_step(self, run_id: str, step_key: str) -> TaskRecord | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(t.human_tasks).where(
                    and_(t.human_tasks.c.run_id == run_id, t.human_tasks.c.step_key == step_key)
                )
            ).first()
        return None if row is None else _record(TaskRecord, row)

    def resolve_task(
        self, task_id: str, *, status: str, decision: str, values: Mapping[str, JsonValue], actor: str
    ) -> bool:
        """Mark a pending task resolved; return False if it was already resolved (the first caller wins)."""
        with self.engine.begin() as connection:
            result = connection.execute(
                update(t.human_tasks)
                .where(and_(t.human_tasks.c.id == task_id, t.human_tasks.c.status == "pending"))
                .values(
                    status=status, decision=decision, values=dict(values), resolved_by=actor, resolved_at=time.time()
                )
            )
        return bool(result.rowcount == 1)

    def get_mcp_instance(self, instance_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(t.mcp_instances).where(t.mcp_instances.c.id == instance_id)).first()
        return None if row is None else dict(row._mapping)

    def add_mcp_instance(self, **values: Any) -> str:
        """Create an MCP instance record (no secrets: those are bound through connections)."""
        instance_id = str(values.pop("id", None) or new_id())
        row = {"args": [], "env": {}, "created_at": time.time(), **values, "id": instance_id, **self._scope()}
        with self.engine.begin() as connection:
            connection.execute(insert(t.mcp_instances).values(**row))
        return instance_id

    def get_connection(self, connection_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(t.connections).where(t.connections.c.id == connection_id)).first()
        return None if row is None else dict(row._mapping)

    def list_connections(self) -> list[dict[str, Any]]:
        """Return the connection records of this store's workspace, ordered by name."""
        query = select(t.connections).where(t.connections.c.workspace_id == self.workspace_id)
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(t.connections.c.name)).all()
        return [dict(row._mapping) for row in rows]

    def add_connection(self, **values: Any) -> str:
        """Create a connection record and return its id; secrets stay out, ``secret_ref`` points to them."""
        connection_id = str(values.pop("id", None) or new_id())
        row = {"settings": {}, "created_at": time.time(), **values, "id": connection_id, **self._scope()}
        with self.engine.begin() as connection:
            connection.execute(insert(t.connections).values(**row))
        return connection_id

    def update_connection(self, connection_id: str, **values: Any) -> None:
        """Change fields of a connection record (name, kind, provider, base_url, secret_ref, settings)."""
        allowed = {"name", "kind", "provider", "base_url", "secret_ref", "settings"}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise StoreError(f"cannot update connection fields {unknown}; updatable: {sorted(allowed)}")
        with self.engine.begin() as connection:
            result = connection.execute(
                update(t.connections).where(t.connections.c.id == connection_id).values(**values)
            )
        if result.rowcount != 1:
            raise NotFoundError(f"connection '{connection_id}' was not found")

    def delete_connection(self, connection_id: str) -> bool:
        """Delete a connection record; return False when it did not exist."""
        with self.engine.begin() as connection:
            result = connection.execute(t.connections.delete().where(t.connections.c.id == connection_id))
        return bool(result.rowcount == 1)

    def workspace_slug(self) -> str:
        """Return the slug of this store's workspace (the keychain service name contains it)."""
        with self.engine.connect() as connection:
            slug = connection.execute(
                select(t.workspaces.c.slug).where(t.workspaces.c.id == self.workspace_id)
            ).scalar_one()
        return str(slug)

    def workflow_documents(self) -> list[dict[str, Any]]:
        """Return every draft and version document with ``workflow_id``, ``workflow_name`` and ``version``.

        ``version`` is None for a draft, else the version number (test snapshots have negative numbers).
        """
        with self.engine.connect() as connection:
            drafts = connection.execute(
                select(t.drafts.c.workflow_id, t.workflows.c.name, t.drafts.c.document).join(
                    t.workflows, t.workflows.c.id == t.drafts.c.workflow_id
                )
            ).all()
            versions = connection.execute(
                select(
                    t.workflow_versions.c.workflow_id,
                    t.workflows.c.name,
                    t.workflow_versions.c.document,
                    t.workflow_versions.c.number,
                ).join(t.workflows, t.workflows.c.id == t.workflow_versions.c.workflow_id)
            ).all()
        documents = [
            {"workflow_id": row[0], "workflow_name": row[1], "version": None, "document": row[2]} for row in drafts
        ]
        documents += [
            {"workflow_id": row[0], "workflow_name": row[1], "version": row[3], "document": row[2]} for row in versions
        ]
        return documents

    # -- usage ----------------------------------------------------------------------------------

    def usage(self, run_id: str) -> list[dict[str, Any]]:
        """Return a run's metered usage in time order: the stored records plus one ``step`` record per executed step.

        Executed steps are metered from their step runs instead of a stored row each (the journal's
        hot path stays one insert shorter). A step run counts when it completed by executing, so
        ``for_each`` containers, results reused by a re-run and pinned outputs cost nothing. The
        derived records get ids that are stable across calls (UUID v5 of run and step key).
        """
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.usage_records).where(t.usage_records.c.run_id == run_id).order_by(t.usage_records.c.at)
            ).all()
            run = connection.execute(select(t.runs.c.workflow_id).where(t.runs.c.id == run_id)).first()
            steps = connection.execute(
                select(t.step_runs.c.step_key, t.step_runs.c.step_id, t.step_runs.c.step_type, t.step_runs.c.finished_at)
                .where(
                    and_(
                        t.step_runs.c.run_id == run_id,
                        t.step_runs.c.status == "completed",
                        t.step_runs.c.step_type != "for_each",
                        t.step_runs.c.reused_from.is_(None),
                        t.step_runs.c.pinned.is_(False),
                    )
                )
            ).all()
        records = [dict(row._mapping) for row in rows]
        for step in steps:
            records.append(
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"studio:usage:{run_id}:{step.step_key}")),
                    **self._scope(),
                    "run_id": run_id,
                    "workflow_id": None if run is None else run.workflow_id,
                    "step_key": step.step_key,
                    "step_id": step.step_id,
                    "kind": "step",
                    "quantity": 1.0,
                    "unit": "step",
                    "credits": credits_for("step", 1),
                    "detail": {"step_type": step.step_type},
                    "at": step.finished_at,
                }
            )
        records.sort(key=lambda record: record["at"] or 0.0)
        return records


def open_store(path: str | Path | None = None) -> Store:
    """Open (creating and migrating as needed) the store at ``path``, or the default location."""
    database_path = Path(path) if path is not None else default_database_path()
    engine = create_sqlite_engine(database_path)
    migrate(engine)
    logger.debug("Opened store %s", database_path)
    return Store(engine, database_path)
