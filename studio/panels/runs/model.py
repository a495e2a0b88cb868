"""Qt-free run list data: rows built from the store, status changes from events, and filters."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from studio.engine.events import EventType
from studio.store import NotFoundError, RunRecord, Store

logger = logging.getLogger(__name__)

RUN_STATUSES = ("created", "running", "paused", "waiting", "completed", "failed", "stopped")
ACTIVE_RUN_STATUSES = frozenset({"created", "running", "paused", "waiting"})
STATUS_AFTER_EVENT: dict[EventType, str] = {
    EventType.RUN_STARTED: "running",
    EventType.RUN_RESUMED: "running",
    EventType.RUN_PAUSED: "paused",
    EventType.RUN_WAITING: "waiting",
    EventType.RUN_COMPLETED: "completed",
    EventType.RUN_FAILED: "failed",
    EventType.RUN_STOPPED: "stopped",
    EventType.TASK_RESOLVED: "running",
}
"""Run status after each run-level event; a resolved human task also sets a waiting run running again."""


@dataclass
class RunRow:
    """One run as the list shows it. Times are Unix seconds."""

    run_id: str
    workflow_id: str
    workflow_name: str
    version_id: str
    version_number: int
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    owner: str | None
    is_test: bool = False
    """A test run of a draft, whose version is a hidden snapshot with no published number."""

    def duration(self, now: float) -> float | None:
        """Return the run time in seconds: until it finished, or until ``now`` while it is active."""
        start = self.started_at if self.started_at is not None else self.created_at
        if self.finished_at is not None:
            return max(self.finished_at - start, 0.0)
        if self.status in ACTIVE_RUN_STATUSES and self.status != "paused":
            return max(now - start, 0.0)
        return None


@dataclass
class RunFilter:
    """Filter of the runs list. Empty fields match everything; ``since``/``until`` bound ``created_at``."""

    workflow_id: str | None = None
    version_id: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    text: str = ""

    def matches(self, row: RunRow) -> bool:
        if self.workflow_id is not None and row.workflow_id != self.workflow_id:
            return False
        if self.version_id is not None and row.version_id != self.version_id:
            return False
        if self.status is not None and row.status != self.status:
            return False
        if self.since is not None and row.created_at < self.since:
            return False
        if self.until is not None and row.created_at >= self.until:
            return False
        needle = self.text.strip().lower()
        if needle:
            return row.run_id.lower().startswith(needle) or needle in row.workflow_name.lower()
        return True


def day_bounds(first: datetime.date, last: datetime.date) -> tuple[float, float]:
    """Return the Unix times of the start of ``first`` and the end of ``last``, in local time."""
    if last < first:
        raise ValueError(f"the date range is invalid: {last.isoformat()} is before {first.isoformat()}")
    start = datetime.datetime.combine(first, datetime.time.min).timestamp()
    end = datetime.datetime.combine(last + datetime.timedelta(days=1), datetime.time.min).timestamp()
    return start, end


class RunCatalog:
    """Reads runs from the store as :class:`RunRow` objects, caching workflow names and version numbers."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._names: dict[str, str] = {}
        self._versions: dict[str, int] = {}

    def recent(self, limit: int) -> list[RunRow]:
        """Return the newest ``limit`` runs, newest first."""
        return self.rows(self.store.list_runs(limit=limit))

    def row(self, run_id: str) -> RunRow | None:
        """Return the row of one run, or None when the store has no such run."""
        try:
            record = self.store.get_run(run_id)
        except NotFoundError:
            logger.warning("run %s is not in the store, so the runs list cannot show it", run_id)
            return None
        return self.rows([record])[0]

    def rows(self, records: Iterable[RunRecord]) -> list[RunRow]:
        records = list(records)
        missing = {record.workflow_id for record in records} - self._names.keys()
        self._names.update(self.store.workflow_names(missing))
        return [self._row(record) for record in records]

    def version_number(self, version_id: str) -> int:
        number = self._versions.get(version_id)
        if number is None:
            try:
                number = self.store.get_version(version_id).number
            except NotFoundError:
                number = 0
            self._versions[version_id] = number
        return number

    def versions_of(self, workflow_id: str) -> list[tuple[str, int]]:
        """Return ``(version id, number)`` of a workflow's published versions, oldest first."""
        versions = self.store.list_versions(workflow_id)
        for version in versions:
            self._versions[version.id] = version.number
        return [(version.id, version.number) for version in versions]

    def _row(self, record: RunRecord) -> RunRow:
        return RunRow(
            run_id=record.id,
            workflow_id=record.workflow_id,
            workflow_name=self._names.get(record.workflow_id, record.workflow_id),
            version_id=record.version_id,
            version_number=self.version_number(record.version_id),
            status=record.status,
            created_at=record.created_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            owner=record.owner,
            is_test=record.is_test,
        )
