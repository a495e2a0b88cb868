"""Pause, resume and stop a run from any process: in this engine, through its owner's engine, or by adopting it.

A run executed by another live process gets a durable request on its row. The owner's engine
reads it every ``control_poll_interval_s`` and applies it through its own pause, resume or stop.
A run that no live process executes (paused, waiting, or left behind by a crash) is adopted by
this engine and the action is applied here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from studio.engine.engine import Engine, EngineError
from studio.store import RunRecord

logger = logging.getLogger(__name__)

ACTIONS = ("pause", "resume", "stop")
FINAL_STATUSES = frozenset({"completed", "failed", "stopped"})
_TARGETS = {
    # A waiting run accepts the pause at once and pauses when its human task is resolved.
    "pause": FINAL_STATUSES | {"paused", "waiting"},
    "resume": FINAL_STATUSES | {"created", "running", "waiting"},
    "stop": FINAL_STATUSES,
}
"""Run statuses that show an action took effect (or became moot because the run ended)."""
POLL_INTERVAL_S = 0.1
"""How often the store is read while waiting for an action to take effect."""


class ControlTimeout(EngineError):
    """An action that did not take effect within the timeout; the message states whether it is still pending."""


@dataclass(frozen=True)
class ControlOutcome:
    """The result of a pause, resume or stop."""

    run_id: str
    action: str
    status: str
    """The run's status once the action took effect."""
    route: str
    """'this process' (live here), 'owner' (applied by the owning process) or 'adopted' (continued here)."""
    cancelled: list[str]
    """Step keys a stop cancelled, from the run's ``run_stopped`` event (empty for other actions)."""


async def control_run(
    engine: Engine,
    run_id: str,
    action: str,
    *,
    actor: str = "local user",
    timeout_s: float = 30.0,
    poll_interval_s: float = POLL_INTERVAL_S,
) -> ControlOutcome:
    """Apply ``action`` to the run wherever it is executed and wait until it took effect.

    Raises EngineError when the action does not apply to the run's status, and ControlTimeout
    when it has not taken effect after ``timeout_s`` seconds (a request sent to another process
    stays recorded, so that process still applies it when it can).
    """
    if action not in ACTIONS:
        raise EngineError(f"run action '{action}' is invalid; use one of {', '.join(ACTIONS)}")
    run = engine.store.get_run(run_id)
    _check_applicable(run, action)
    deadline = time.monotonic() + timeout_s
    if engine.is_live(run.id):
        await _apply_here(engine, run.id, action)
        return await _await_effect(engine, run.id, action, "this process", deadline, poll_interval_s)
    if run.owner is not None and run.owner != engine.owner and engine.owner_alive(run):
        return await _request_from_owner(engine, run, action, actor, deadline, poll_interval_s)
    await _adopt_and_apply(engine, run, action)
    return await _await_effect(engine, run.id, action, "adopted", deadline, poll_interval_s)


def _check_applicable(run: RunRecord, action: str) -> None:
    if run.status in FINAL_STATUSES:
        raise EngineError(f"run {run.id} already ended ({run.status}); there is nothing to {action}")
    if action == "pause" and run.status == "paused":
        raise EngineError(f"run {run.id} is already paused; continue it with 'studio runs resume {run.id}'")
    if action == "resume" and run.status != "paused":
        raise EngineError(f"run {run.id} is {run.status}, not paused; only paused runs can be resumed")


async def _apply_here(engine: Engine, run_id: str, action: str) -> None:
    if action == "pause":
        await engine.pause(run_id)
    elif action == "resume":
        await engine.resume(run_id)
    else:
        await engine.stop(run_id)


async def _adopt_and_apply(engine: Engine, run: RunRecord, action: str) -> None:
    """Take over a run that no live process executes, then apply ``action`` in this engine."""
    logger.info("Adopting run %s (%s) to %s it", run.id, run.status, action)
    if action == "resume":
        await engine.resume(run.id)
        return
    if action == "stop":
        await engine.stop(run.id)
        return
    await engine.adopt(run.id)
    await engine.pause(run.id)


async def _request_from_owner(
    engine: Engine, run: RunRecord, action: str, actor: str, deadline: float, poll_interval_s: float
) -> ControlOutcome:
    """Record the request for the owning process and wait until it took effect.

    If the owner exits or dies before it read the request, the request is withdrawn and this
    engine adopts the run and applies the action itself.
    """
    requested_at = engine.store.request_run_action(run.id, action, actor)
    logger.info("Requested %s of run %s from its owner %s", action, run.id, run.owner)
    while True:
        current = engine.store.get_run(run.id)
        acknowledged = current.requested_at != requested_at
        if acknowledged and current.status in _TARGETS[action]:
            return _outcome(engine, current, action, "owner")
        if not acknowledged and not engine.owner_alive(current):
            if engine.store.clear_run_request(run.id, requested_at):
                logger.info("Owner of run %s is gone before applying %s; adopting the run", run.id, action)
                _check_applicable(current, action)
                await _adopt_and_apply(engine, current, action)
                return await _await_effect(engine, run.id, action, "adopted", deadline, poll_interval_s)
            continue
        if time.monotonic() >= deadline:
            raise ControlTimeout(_owner_timeout_message(current, action, acknowledged))
        await asyncio.sleep(poll_interval_s)


async def _await_effect(
    engine: Engine, run_id: str, action: str, route: str, deadline: float, poll_interval_s: float
) -> ControlOutcome:
    while True:
        current = engine.store.get_run(run_id)
        if current.status in _TARGETS[action]:
            return _outcome(engine, current, action, route)
        if time.monotonic() >= deadline:
            raise ControlTimeout(
                f"run {run_id} is still {current.status}: the {action} is requested in this process and "
                f"takes effect once its running steps finish; wait longer with --timeout"
            )
        await asyncio.sleep(poll_interval_s)


def _outcome(engine: Engine, run: RunRecord, action: str, route: str) -> ControlOutcome:
    cancelled: list[str] = []
    if action == "stop" and run.status == "stopped":
        for event in reversed(engine.store.events(run.id)):
            if event["type"] == "run_stopped":
                keys = event["data"].get("cancelled") or []
                cancelled = [str(key) for key in keys]
                break
    logger.info("Run %s is %s after %s (%s)", run.id, run.status, action, route)
    return ControlOutcome(run.id, action, run.status, route, cancelled)


def _owner_timeout_message(run: RunRecord, action: str, acknowledged: bool) -> str:
    if acknowledged:
        return (
            f"run {run.id} is still {run.status}: its owner {run.owner} accepted the {action} and applies it "
            "once the running steps finish; check again with 'studio runs show'"
        )
    return (
        f"run {run.id} did not {action} in time: its owner {run.owner} has not read the request yet. "
        "The request stays recorded and the owner applies it when it reads it; check with 'studio runs show'"
    )
