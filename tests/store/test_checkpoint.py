"""WAL checkpoints: the checkpoint thread copies committed pages soon after commits, and the WAL stays bounded."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from studio.engine import Engine
from studio.store import open_store
from studio.store.checkpoint import WalCheckpointer
from tests.conftest import build_workflow, lua_step

RESULT_CHARS = 4000
STEPS = 150
CHAIN_STEPS = 3000


async def test_run_pages_reach_database_file(tmp_path: Path) -> None:
    # 150 results of 4,000 characters, each written in a step row and an event, are about 300 WAL
    # pages: under SQLite's automatic threshold of 1,000, so only the checkpoint thread copies them.
    path = tmp_path / "wal.db"
    store = open_store(path)
    engine = Engine(store)
    try:
        size_before = path.stat().st_size
        steps = [lua_step(f"s{index}", f'return string.rep("x", {RESULT_CHARS})') for index in range(STEPS)]
        run_id = await engine.run_workflow(build_workflow(steps))
        summary = await engine.wait(run_id)
        expected_growth = STEPS * RESULT_CHARS
        deadline = time.monotonic() + 10
        while path.stat().st_size < size_before + expected_growth and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

        assert summary.status == "completed"
        assert path.stat().st_size >= size_before + expected_growth
    finally:
        await engine.aclose()
        store.close()


async def test_wal_stays_bounded_while_steps_commit(tmp_path: Path) -> None:
    # 3,000 results of 4,000 characters write about 24 MB to the WAL. The WAL restarts from its
    # start only after a checkpoint that no commit overlapped. The journal's own checkpoints are
    # such checkpoints, so without them the WAL grew by everything the run wrote.
    path = tmp_path / "wal.db"
    wal = Path(f"{path}-wal")
    store = open_store(path)
    engine = Engine(store)
    sizes: list[int] = []
    sampling = True

    async def sample() -> None:
        while sampling:
            sizes.append(wal.stat().st_size if wal.exists() else 0)
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    try:
        # A chain, so that the run's own result (its leaf steps' results) stays small.
        steps = [lua_step(f"s{index}", f'return string.rep("x", {RESULT_CHARS})') for index in range(CHAIN_STEPS)]
        edges = [(f"s{index - 1}", f"s{index}") for index in range(1, CHAIN_STEPS)]
        summary = await engine.wait(await engine.run_workflow(build_workflow(steps, edges)))
    finally:
        sampling = False
        await sampler
        await engine.aclose()
        store.close()

    assert summary.status == "completed"
    assert max(sizes) < 8_000_000


def test_close_makes_last_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA wal_autocheckpoint=0")
        connection.execute("CREATE TABLE rows (text TEXT)")
        checkpointer = WalCheckpointer(path)
        connection.executemany("INSERT INTO rows VALUES (?)", [("y" * 1000,) for _ in range(200)])
        connection.commit()
        checkpointer.notify()

        checkpointer.close()
        size = path.stat().st_size
    connection.close()

    assert checkpointer.checkpoints >= 1
    assert size >= 200 * 1000
