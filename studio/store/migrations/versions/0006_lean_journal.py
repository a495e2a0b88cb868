"""Store step runs and events as clustered tables keyed by run, for cheaper per-step commits.

Both tables become WITHOUT ROWID tables whose primary key is the lookup key: (run_id, step_key)
and (run_id, seq). Each journal insert then writes one B-tree instead of a table plus an index,
and events lose their surrogate ``id`` (nothing reads it; order is ``seq``).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_STEP_RUNS = """
CREATE TABLE step_runs_new (
    run_id VARCHAR(36) NOT NULL,
    step_key VARCHAR(400) NOT NULL,
    step_id VARCHAR(64) NOT NULL,
    step_type VARCHAR(16) NOT NULL,
    status VARCHAR(16) NOT NULL,
    attempt INTEGER NOT NULL,
    inputs JSON,
    result JSON,
    error JSON,
    started_at FLOAT,
    finished_at FLOAT,
    reused_from VARCHAR(36),
    pinned BOOLEAN DEFAULT '0' NOT NULL,
    CONSTRAINT pk_step_runs PRIMARY KEY (run_id, step_key),
    CONSTRAINT fk_step_runs_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id)
) WITHOUT ROWID
"""

_EVENTS = """
CREATE TABLE events_new (
    run_id VARCHAR(36) NOT NULL,
    seq INTEGER NOT NULL,
    type VARCHAR(32) NOT NULL,
    step_key VARCHAR(400),
    at FLOAT NOT NULL,
    data JSON NOT NULL,
    CONSTRAINT pk_events PRIMARY KEY (run_id, seq),
    CONSTRAINT fk_events_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id)
) WITHOUT ROWID
"""

_STEP_COLUMNS = (
    "run_id, step_key, step_id, step_type, status, attempt, inputs, result, error, "
    "started_at, finished_at, reused_from, pinned"
)


def upgrade() -> None:
    op.execute(_STEP_RUNS)
    op.execute(f"INSERT INTO step_runs_new ({_STEP_COLUMNS}) SELECT {_STEP_COLUMNS} FROM step_runs")
    op.execute("DROP TABLE step_runs")
    op.execute("ALTER TABLE step_runs_new RENAME TO step_runs")

    op.execute(_EVENTS)
    # Earlier versions never wrote two events with one (run_id, seq); OR IGNORE keeps the first
    # row should a hand-edited database have duplicates, instead of failing the upgrade.
    op.execute(
        "INSERT OR IGNORE INTO events_new (run_id, seq, type, step_key, at, data) "
        "SELECT run_id, seq, type, step_key, at, data FROM events ORDER BY id"
    )
    op.execute("DROP INDEX IF EXISTS ix_events_run_seq")
    op.execute("DROP TABLE events")
    op.execute("ALTER TABLE events_new RENAME TO events")


def downgrade() -> None:
    op.execute(
        "CREATE TABLE events_old (id INTEGER NOT NULL, run_id VARCHAR(36) NOT NULL, seq INTEGER NOT NULL, "
        "type VARCHAR(32) NOT NULL, step_key VARCHAR(400), at FLOAT NOT NULL, data JSON NOT NULL, "
        "CONSTRAINT pk_events PRIMARY KEY (id), "
        "CONSTRAINT fk_events_run_id_runs FOREIGN KEY(run_id) REFERENCES runs (id))"
    )
    op.execute(
        "INSERT INTO events_old (run_id, seq, type, step_key, at, data) SELECT run_id, seq, type, step_key, at, data FROM events ORDER BY run_id, seq"
    )
    op.execute("DROP TABLE events")
    op.execute("ALTER TABLE events_old RENAME TO events")
    op.execute("CREATE INDEX ix_events_run_seq ON events (run_id, seq)")

    op.execute(_STEP_RUNS.replace("step_runs_new", "step_runs_old").replace(") WITHOUT ROWID", ")"))
    op.execute(f"INSERT INTO step_runs_old ({_STEP_COLUMNS}) SELECT {_STEP_COLUMNS} FROM step_runs")
    op.execute("DROP TABLE step_runs")
    op.execute("ALTER TABLE step_runs_old RENAME TO step_runs")
