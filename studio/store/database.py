"""Opening the SQLite database: connection settings, transactions and schema migrations."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BUSY_TIMEOUT_MS = 10_000
"""How long a writer waits for another process's write transaction before failing."""

HEAD_REVISION = "0008"
"""The newest migration in ``migrations/versions``; a test keeps the two in step.

Opening a database at this revision skips importing alembic, which took about 0.2 s of every
command's start-up.
"""


def create_sqlite_engine(path: Path) -> Engine:
    """Create an engine for the SQLite file at ``path`` with WAL, foreign keys and explicit transactions.

    pysqlite's own transaction handling is switched off so that every SQLAlchemy transaction
    starts with ``BEGIN IMMEDIATE``: writers queue on the database lock at the start instead of
    failing half-way with "database is locked".
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        configure_connection(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def configure_connection(connection: sqlite3.Connection) -> None:
    """Apply the store's settings to a new sqlite3 connection: WAL, foreign keys, explicit transactions."""
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode, NORMAL loses no committed transaction when the process crashes. Only a power
    # loss can drop the last commits, and FULL, which syncs on every commit, costs far more.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op when it is already there."""
    with engine.connect() as connection:
        try:
            stored = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except OperationalError:
            stored = []  # a new database: no version table yet
    if stored == [HEAD_REVISION]:
        return
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    config = _alembic_config()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    logger.info("Migrating database schema from %s to %s", current or "empty", HEAD_REVISION)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
