"""Persistence through SQLAlchemy on SQLite: documents, versions, runs, journal, tasks and usage."""

from studio.store.journal_sql import JournalBatch
from studio.store.store import (
    NotFoundError,
    PinRecord,
    RunRecord,
    RunRequest,
    StepRunRecord,
    Store,
    StoreError,
    TaskRecord,
    VersionRecord,
    default_database_path,
    new_id,
    open_store,
)

__all__ = [
    "JournalBatch",
    "NotFoundError",
    "PinRecord",
    "RunRecord",
    "RunRequest",
    "StepRunRecord",
    "Store",
    "StoreError",
    "TaskRecord",
    "VersionRecord",
    "default_database_path",
    "new_id",
    "open_store",
]
