"""Process start-up tuning shared by the command line, the window and the benchmarks."""

from __future__ import annotations

import gc
import logging
import time

logger = logging.getLogger(__name__)

_frozen = False


def freeze_startup_objects() -> None:
    """Move the objects alive now out of the cyclic garbage collector's reach, once per process.

    Once the engine's libraries are imported, a process contains about 160,000 objects (modules,
    classes, functions), and every full collection walked all of them. That took 94 ms on the
    2-core development machine, long enough to stall a run or a frame of the window whenever
    allocations triggered one. Later collections skip frozen objects. Cyclic garbage among them would never be
    freed, so this collects first, and only the first call freezes.
    """
    global _frozen
    if _frozen:
        return
    _frozen = True
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    logger.debug(
        "Froze %d start-up objects in %.1f ms", gc.get_freeze_count(), (time.perf_counter() - started) * 1000
    )
