"""Start-up tuning: the objects alive once the engine exists are frozen once per process."""

from __future__ import annotations

import gc

import pytest

from studio import startup


def test_freeze_happens_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "_frozen", False)
    gc.unfreeze()
    try:
        startup.freeze_startup_objects()
        frozen = gc.get_freeze_count()
        newer_objects = [object() for _ in range(1000)]
        startup.freeze_startup_objects()

        assert frozen > 1000
        assert gc.get_freeze_count() == frozen, "a second call must not freeze newer objects"
        assert len(newer_objects) == 1000
    finally:
        gc.unfreeze()
