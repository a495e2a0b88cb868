"""The embedded engine's public API: start, watch, pause, resume and stop runs, resolve human tasks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

import jsonschema
from pydantic import JsonValue
from referencing import Registry
from referencing.exceptions import Unresolvable

from studio.engine import elicitation
from studio.engine.events import RUN_TERMINAL_EVENTS, EventType, RunEvent
from studio.engine.executors_api import ExecutorServices
from studio.engine.journal import Journal
from studio.engine.rerun import RerunError, SeededStep, pinned_seeds, plan_rerun, reused_seeds
from studio.engine.runner import RunExecution, TaskDecision
from studio.model.validation import VALIDATION_REVISION, validate_workflow
from studio.model.workflow import FormField, Workflow
from studio.store import RunRecord, RunRequest, Store, StoreError, VersionRecord, new_id

logger = logging.getLogger(__name__)

Listener = Callable[[RunEvent], None]
SETTLED_STATUSES = frozenset({"completed", "failed", "stopped", "waiting", "paused"})
RUNNABLE_VERSIONS_KEPT = 256
"""How many validated version hashes an engine remembers, so repeated runs of a version skip validation."""

HEARTBEAT_INTERVAL_S = 5.0
STALE_OWNER_S = 30.0
"""A run whose owner has not written a heartbeat for this long counts as interrupted."""
CONTROL_POLL_INTERVAL_S = 0.25
"""How often an engine reads the pause, resume and stop requests other processes recorded on its runs."""


class EngineError(Exception):
    """A request the engine cannot carry out; the message names the value and the fix."""


class InputError(EngineError):
    """Run input that does not match the workflow's input schema."""


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    status: str
    result: JsonValue
    error: JsonValue


@dataclass
class _LiveRun:
    execution: RunExecution
    task: asyncio.Task[None]
    settled: asyncio.Event


class Engine:
    """Runs published workflow versions in this process, durably.

    Create it inside a running event loop. Every run's state changes are committed to the store
    before listeners hear of them; a run interrupted by a crash is picked up again by
    :meth:`resume_interrupted`. Every ``control_poll_interval_s`` seconds the engine applies the
    pause, resume and stop requests that other processes stored on its runs (see
    :mod:`studio.engine.control`).
    """

    def __init__(
        self,
        store: Store,
        *,
        max_concurrency: int = 16,
        services: ExecutorServices | None = None,
        heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
        control_poll_interval_s: float = CONTROL_POLL_INTERVAL_S,
    ) -> None:
        self.store = store
        self.services = services or ExecutorServices(store)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._concurrency = asyncio.Semaphore(max_concurrency)
        self._live: dict[str, _LiveRun] = {}
        self._runnable_versions: OrderedDict[str, None] = OrderedDict()
        """Content hashes of versions that passed :func:`check_runnable`, most recent last."""
        self._listeners: list[tuple[Listener, str | None]] = []
        self._heartbeat_interval_s = heartbeat_interval_s
        self._control_poll_interval_s = control_poll_interval_s
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._request_tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- subscriptions ------------------------------------------------------------------------

    def add_listener(self, callback: Listener, run_id: str | None = None) -> Callable[[], None]:
        """Call ``callback`` for every event (of ``run_id`` only, if given); return an unsubscribe function.

        Callbacks run on the event loop, in event order, and must not block.
        """
        entry = (callback, run_id)
        self._listeners.append(entry)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(entry)

        return unsubscribe

    async def events(self, run_id: str) -> AsyncIterator[RunEvent]:
        """Yield the events of ``run_id`` from now on until the run ends or settles."""
        queue: asyncio.Queue[RunEvent | None] = asyncio.Queue()
        unsubscribe = self.add_listener(queue.put_nowait, run_id)
        live = self._live.get(run_id)
        watcher = asyncio.create_task(self._close_queue_when_settled(run_id, live, queue))
        try:
            while (event := await queue.get()) is not None:
                yield event
                if event.type in RUN_TERMINAL_EVENTS:
                    return
        finally:
            unsubscribe()
            watcher.cancel()

    async def _close_queue_when_settled(
        self, run_id: str, live: _LiveRun | None, queue: asyncio.Queue[RunEvent | None]
    ) -> None:
        if live is None:
            queue.put_nowait(None)
            return
        await live.settled.wait()
        queue.put_nowait(None)

    def _announce(self, event: RunEvent) -> None:
        for callback, run_filter in list(self._listeners):
            if run_filter is None or run_filter == event.run_id:
                try:
                    callback(event)
                except Exception:
                    logger.exception("Listener failed on %s of run %s", event.type.value, event.run_id)

    # -- starting and watching runs -----------------------------------------------------------

    def validate_inputs(self, workflow: Workflow, inputs: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
        """Apply input defaults and check the result against the input schema; raise InputError."""
        merged: dict[str, JsonValue] = {**workflow.input_defaults(), **inputs}
        # An empty registry: a "$ref" is resolved only inside the schema, never fetched from a URL.
        validator = jsonschema.Draft202012Validator(workflow.input_schema, registry=Registry())
        try:
            problems = sorted(validator.iter_errors(merged), key=lambda error: list(error.path))
        except Unresolvable as error:
            raise InputError(
                f"the workflow's input schema has a $ref that cannot be resolved ({error}); "
                "use only references inside the schema, such as #/$defs/name"
            ) from None
        if problems:
            lines = []
            for problem in problems[:10]:
                where = ".".join(str(part) for part in problem.path) or "input"
                lines.append(f"{where}: {problem.message}")
            raise InputError(
                "the run input does not match the workflow's input schema: "
                + "; ".join(lines)
                + ". Pass the missing or corrected values with --input name=value"
            )
        return merged

    async def start_run(
        self, version_id: str, inputs: Mapping[str, JsonValue] | None = None, *, parent_run_id: str | None = None
    ) -> str:
        """Create a run of a published version and start it in the background; return its id."""
        self._check_open()
        version = self.store.get_version(version_id)
        return await self._create_and_launch(version, inputs or {}, parent_run_id=parent_run_id)

    async def start_test_run(
        self,
        workflow: Workflow,
        inputs: Mapping[str, JsonValue] | None = None,
        pins: Mapping[str, JsonValue] | None = None,
    ) -> str:
        """Run a draft as a test run, completing each pinned step with its pinned value; return the run id.

        The draft is stored as a hidden test snapshot (never listed as a published version) and
        the run is marked ``is_test``. ``pins`` maps top-level step ids to values; None uses the
        pins stored for the workflow. A pinned step's ``step_completed`` event has ``pinned: true``.
        Raises EngineError when a pin names no top-level step.
        """
        self._check_open()
        if pins is None:
            pins = {step_id: pin.value for step_id, pin in self.store.pins(workflow.id).items()}
        try:
            seeds = pinned_seeds(workflow, pins)
        except RerunError as error:
            raise EngineError(str(error)) from None
        version = self.store.save_test_snapshot(workflow)
        return await self._create_and_launch(version, inputs or {}, seeds=seeds)

    async def rerun_from(self, run_id: str, step_id: str) -> str:
        """Start a new run of ``run_id``'s version that executes ``step_id`` and its downstream steps again.

        Every other step that completed in the recorded run is reused with its recorded result
        (its row has ``reused_from`` set). The new run has the same inputs and ``parent_run_id``
        set to ``run_id``. Raises EngineError for an unknown step, or one whose upstream steps
        did not complete in the recorded run.
        """
        self._check_open()
        run = self.store.get_run(run_id)
        version = self.store.get_version(run.version_id)
        try:
            plan = plan_rerun(version.workflow, run.id, self.store.step_runs(run.id), step_id)
        except RerunError as error:
            raise EngineError(str(error)) from None
        new_run_id = await self._create_and_launch(
            version, run.inputs, parent_run_id=run.id, seeds=reused_seeds(plan, run.id)
        )
        logger.info(
            "Re-running run %s from step %s as run %s (%d step rows reused)",
            run.id,
            plan.start_step_id,
            new_run_id,
            len(plan.reused),
        )
        return new_run_id

    async def _create_and_launch(
        self,
        version: VersionRecord,
        inputs: Mapping[str, JsonValue],
        *,
        parent_run_id: str | None = None,
        seeds: Sequence[SeededStep] = (),
    ) -> str:
        """Create a run (with its seeded step rows) and start it in the background; return its id."""
        workflow = version.workflow
        if version.validated_by != VALIDATION_REVISION:
            # Versions stored unchecked, or checked by an older revision, are validated here.
            # NOTE: a marked version is trusted; a document edited in the database afterwards is not checked again.
            self._check_version_runnable(version.content_hash, workflow)
        merged = self.validate_inputs(workflow, inputs)
        run_id = new_id()
        created = RunEvent(
            run_id,
            1,
            EventType.RUN_CREATED,
            data={
                "workflow_id": version.workflow_id,
                "version_id": version.id,
                "inputs": merged,
            },
        )
        seeded = [
            RunEvent(run_id, seq, EventType(seed.event_type), seed.step_key, seed.step_id, seed.event_data, created.at)
            for seq, seed in enumerate(seeds, start=2)
        ]
        run = self.store.create_run(
            version,
            merged,
            parent_run_id=parent_run_id,
            first_event=_event_row(created),
            seed_steps=[seed.row for seed in seeds],
            seed_events=[_event_row(event) for event in seeded],
            # Owned from its first commit: another process resuming abandoned runs must not take it.
            owner=self.owner,
        )
        logger.info("Created run %s of workflow %s version %d", run_id, version.workflow_id, version.number)
        for event in [created, *seeded]:
            self._announce(event)
        existing = self.store.step_runs(run_id) if seeds else {}
        self._launch(run, workflow, existing=existing, resumed=False)
        return run_id

    async def run_workflow(
        self, workflow: Workflow, inputs: Mapping[str, JsonValue] | None = None, *, note: str = ""
    ) -> str:
        """Publish ``workflow`` (or reuse its identical published version) and start a run of it.

        A workflow with validation errors is neither published nor run (EngineError).
        """
        check_runnable(workflow)
        version = self.store.publish_workflow(workflow, note=note, validated_by=VALIDATION_REVISION)
        self._remember_runnable(version.content_hash)
        return await self.start_run(version.id, inputs)

    def _check_version_runnable(self, digest: str, workflow: Workflow) -> None:
        """Validate a version's workflow before its run, once per content hash (same hash, same document)."""
        if digest in self._runnable_versions:
            self._runnable_versions.move_to_end(digest)
            return
        check_runnable(workflow)
        self._remember_runnable(digest)

    def _remember_runnable(self, digest: str) -> None:
        self._runnable_versions[digest] = None
        self._runnable_versions.move_to_end(digest)
        while len(self._runnable_versions) > RUNNABLE_VERSIONS_KEPT:
            self._runnable_versions.popitem(last=False)

    def _launch(self, run: RunRecord, workflow: Workflow, *, existing: Mapping[str, object], resumed: bool) -> None:
        journal = Journal(self.store, run.id, self._announce, self.store.last_event_seq(run.id))
        settled = asyncio.Event()

        def on_settled(run_id: str) -> None:
            settled.set()

        execution = RunExecution(
            store=self.store,
            run_id=run.id,
            workflow=workflow,
            inputs=dict(run.inputs),
            journal=journal,
            services=self.services,
            concurrency=self._concurrency,
            existing=existing,  # type: ignore[arg-type]
            on_settled=on_settled,
        )
        task = asyncio.create_task(self._execute(execution, resumed), name=f"run-{run.id}")
        live = _LiveRun(execution, task, settled)
        self._live[run.id] = live
        self._ensure_heartbeat()

    async def _execute(self, execution: RunExecution, resumed: bool) -> None:
        try:
            await execution.execute(resumed=resumed)
        except asyncio.CancelledError:
            logger.info("Detached from run %s (status %s)", execution.run_id, execution.status)
            raise
        except Exception:
            logger.exception("Run %s crashed inside the engine", execution.run_id)
            raise
        finally:
            live = self._live.get(execution.run_id)
            if live is not None and live.execution is execution:
                live.settled.set()
                if execution.status in ("completed", "failed", "stopped"):
                    del self._live[execution.run_id]
                    self.store.release_run(execution.run_id, self.owner)

    async def wait(self, run_id: str) -> RunSummary:
        """Wait until the run ends, or waits for a human task, or is paused; return its state then."""
        live = self._live.get(run_id)
        if live is not None:
            while True:
                await live.settled.wait()
                if live.execution.status in SETTLED_STATUSES:
                    break
                live.settled.clear()
            # The status change that settled the run may still be waiting for its journal commit.
            await live.execution.journal.flush()
        run = self.store.get_run(run_id)
        return RunSummary(run.id, run.status, run.result, run.error)

    def is_live(self, run_id: str) -> bool:
        return run_id in self._live

    # -- control ------------------------------------------------------------------------------

    async def pause(self, run_id: str) -> None:
        """Start no new steps; running steps finish, then the run is paused."""
        live = self._require_live(run_id, "pause")
        # A pause recorded before execute() begins would be overwritten by its 'running' status,
        # so wait for the first commit of a just-launched (adopted) execution.
        while not live.execution.started and not live.task.done():
            await asyncio.sleep(0)
        live.settled.clear()
        live.execution.request_pause()

    async def resume(self, run_id: str) -> None:
        """Resume a paused run, in this process or (after a restart) from the store."""
        live = self._live.get(run_id)
        if live is not None:
            live.settled.clear()
            live.execution.request_resume()
            return
        run = self.store.get_run(run_id)
        if run.status != "paused":
            raise EngineError(f"run {run_id} is {run.status}, not paused; only paused runs can be resumed")
        await self._adopt(run)

    async def stop(self, run_id: str) -> None:
        """Cancel the run's running steps and end it as stopped."""
        live = self._live.get(run_id)
        if live is None:
            run = self.store.get_run(run_id)
            if run.status in ("completed", "failed", "stopped"):
                raise EngineError(f"run {run_id} already ended ({run.status}); there is nothing to stop")
            await self._adopt(run, start=False)
            live = self._live[run_id]
        live.execution.stop_requested = True
        live.settled.clear()
        # A task cancelled before it first runs never enters execute(), so the run would stay
        # 'running'. An execution that has not started yet stops at its first gate instead.
        if live.execution.started:
            live.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await live.task

    async def resolve_task(
        self,
        task_id: str,
        decision: str,
        values: Mapping[str, JsonValue] | None = None,
        *,
        actor: str = "local user",
    ) -> RunRecord:
        """Approve or reject a pending human task and let its run continue; exactly one caller wins.

        An elicitation task takes ``accept``, ``decline`` or ``cancel`` (``approve`` and ``reject``
        mean ``accept`` and ``decline``). Raises EngineError when the task is not pending any more,
        or when ``values`` do not fit the task's form.
        """
        task = self.store.get_task(task_id)
        is_elicitation = elicitation.task_kind(task.context) == elicitation.ELICITATION_KIND
        if is_elicitation:
            try:
                decision = elicitation.normalize_decision(decision)
            except ValueError as error:
                raise EngineError(str(error)) from None
        elif decision not in ("approve", "reject"):
            raise EngineError(f"decision '{decision}' is invalid; use 'approve' or 'reject'")
        if task.status != "pending":
            raise EngineError(
                f"task {task.id} was already resolved ({task.status}, {task.decision}) by {task.resolved_by}"
            )
        form_decision = "approve" if decision in ("approve", "accept") else decision
        fields = [FormField.model_validate(f) for f in task.fields]
        checked = check_form_values(fields, values or {}, form_decision)
        if is_elicitation:
            try:
                elicitation.check_values(task.context, checked)
            except ValueError as error:
                raise EngineError(str(error)) from None
            status = elicitation.DECISION_STATUSES[decision]
        else:
            status = "approved" if decision == "approve" else "rejected"
        if not self.store.resolve_task(task.id, status=status, decision=decision, values=checked, actor=actor):
            current = self.store.get_task(task.id)
            raise EngineError(
                f"task {task.id} was resolved by {current.resolved_by} a moment earlier ({current.decision})"
            )
        logger.info("Task %s of run %s resolved: %s by %s", task.id, task.run_id, decision, actor)
        live = self._live.get(task.run_id)
        if live is not None:
            live.settled.clear()
            live.execution.deliver_decision(task.id, TaskDecision(decision, checked, actor))
        else:
            run = self.store.get_run(task.run_id)
            if run.status in ("waiting", "running", "created"):
                if run.owner is not None and run.owner != self.owner and self._owner_alive(run):
                    # The owner polls its pending tasks in the store and applies the decision itself.
                    logger.info("Run %s is executed by %s, which picks up task %s", run.id, run.owner, task.id)
                else:
                    await self._adopt(run)
        return self.store.get_run(task.run_id)

    async def adopt(self, run_id: str) -> None:
        """Continue a run that no live process executes (paused, waiting or interrupted) in this process.

        Raises EngineError when the run already ended or another live process executes it.
        """
        self._check_open()
        if run_id in self._live:
            return
        run = self.store.get_run(run_id)
        if run.status in ("completed", "failed", "stopped"):
            raise EngineError(f"run {run_id} already ended ({run.status}); start a new run or re-run it instead")
        await self._adopt(run)

    def owner_alive(self, run: RunRecord) -> bool:
        """Return whether the process recorded as the run's owner is alive (False when the run has no owner)."""
        return self._owner_alive(run)

    def _require_live(self, run_id: str, action: str) -> _LiveRun:
        live = self._live.get(run_id)
        if live is None:
            run = self.store.get_run(run_id)
            raise EngineError(f"cannot {action} run {run_id}: it is {run.status} and not running in this process")
        return live

    # -- durability ---------------------------------------------------------------------------

    def interrupted_runs(self) -> list[RunRecord]:
        """Runs that should be executing but whose owner process is gone."""
        candidates = self.store.list_runs(statuses=("created", "running", "waiting"), limit=1000)
        orphans = [run for run in candidates if run.id not in self._live and not self._owner_alive(run)]
        return [run for run in orphans if run.status != "waiting" or self._waiting_run_can_move(run)]

    def _waiting_run_can_move(self, run: RunRecord) -> bool:
        """Return whether a parked run can go on: a task was resolved elsewhere, or one is past its timeout."""
        tasks = self.store.list_tasks(statuses=("pending", "approved", "rejected", "timed_out"), run_id=run.id)
        now = time.time()
        for task in tasks:
            if task.status != "pending" or (task.due_at is not None and task.due_at <= now):
                step = self.store.step_runs(run.id).get(task.step_key)
                if step is None or step.status == "waiting":
                    return True
        return False

    async def resume_interrupted(self) -> list[str]:
        """Continue every run left behind by a process that died; return their ids.

        Runs waiting for a human task are adopted too, so their tasks' timeouts keep running.
        """
        resumed: list[str] = []
        for run in self.interrupted_runs():
            try:
                await self._adopt(run)
            except EngineError as error:
                logger.warning("Could not resume run %s: %s", run.id, error)
                continue
            resumed.append(run.id)
        return resumed

    def _owner_alive(self, run: RunRecord) -> bool:
        if run.owner is None:
            return False
        host, _, rest = run.owner.partition(":")
        pid_text = rest.partition(":")[0]
        if host == socket.gethostname() and pid_text.isdigit():
            return _pid_alive(int(pid_text))
        return run.heartbeat_at is not None and time.time() - run.heartbeat_at < STALE_OWNER_S

    async def _adopt(self, run: RunRecord, *, start: bool = True) -> None:
        if run.id in self._live:
            return
        if run.owner is not None and run.owner != self.owner and self._owner_alive(run):
            raise EngineError(f"run {run.id} is being executed by another process ({run.owner}); act on it there")
        if not self.store.claim_run(run.id, self.owner, expected_owner=run.owner):
            raise EngineError(f"run {run.id} was claimed by another process a moment ago")
        version = self.store.get_version(run.version_id)
        existing = self.store.step_runs(run.id)
        fresh = self.store.get_run(run.id)
        logger.info("Resuming run %s (%s) with %d recorded steps", run.id, run.status, len(existing))
        self._launch(fresh, version.workflow, existing=existing, resumed=True)

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat_task is None or self._heartbeat_task.done():
            self._heartbeat_task = asyncio.create_task(self._heartbeat_loop(), name="engine-heartbeat")

    async def _heartbeat_loop(self) -> None:
        """Apply control requests every poll interval and write the heartbeat every heartbeat interval."""
        interval = min(self._control_poll_interval_s, self._heartbeat_interval_s)
        last_beat = time.monotonic()
        while self._live:
            await asyncio.sleep(interval)
            try:
                self._apply_requests()
                if time.monotonic() - last_beat >= self._heartbeat_interval_s:
                    last_beat = time.monotonic()
                    self.store.heartbeat(list(self._live), self.owner)
            except StoreError:
                logger.exception("Heartbeat or control request read failed")

    def _apply_requests(self) -> None:
        """Start applying each pause, resume or stop another process recorded on a run of this engine."""
        for request in self.store.run_requests(self.owner):
            if request.run_id not in self._live or not self.store.clear_run_request(
                request.run_id, request.requested_at
            ):
                continue
            task = asyncio.create_task(self._apply_request(request), name=f"control-{request.run_id}")
            self._request_tasks.add(task)
            task.add_done_callback(self._request_tasks.discard)

    async def _apply_request(self, request: RunRequest) -> None:
        logger.info("Applying %s of run %s requested by %s", request.action, request.run_id, request.requested_by)
        actions = {"pause": self.pause, "resume": self.resume, "stop": self.stop}
        try:
            await actions[request.action](request.run_id)
        except EngineError as error:
            logger.warning(
                "Could not %s run %s as %s requested: %s", request.action, request.run_id, request.requested_by, error
            )

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError("the engine is closed")

    async def aclose(self) -> None:
        """Detach from live runs (they stay resumable), close MCP sessions and HTTP clients."""
        self._closed = True
        for run_id, live in list(self._live.items()):
            live.execution.detaching = True
            live.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await live.task
            live.execution.journal.flush_now()
            self.store.release_run(run_id, self.owner)
        self._live.clear()
        for request_task in list(self._request_tasks):
            request_task.cancel()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
        await self.services.aclose()


def _event_row(event: RunEvent) -> dict[str, object]:
    """Return the journal row of an event written outside a Journal (at run creation)."""
    return {
        "run_id": event.run_id,
        "seq": event.seq,
        "type": event.type.value,
        "step_key": event.step_key,
        "at": event.at,
        "data": event.data,
    }


def check_runnable(workflow: Workflow) -> None:
    """Raise EngineError listing the validation errors that would make ``workflow`` run wrongly.

    Cycles, duplicate ids and dangling edges would otherwise run silently wrong, so no run starts
    while the document has errors, whatever started it (CLI, window, API).
    """
    errors = [finding for finding in validate_workflow(workflow) if finding.severity == "error"]
    if not errors:
        return
    lines = [f"{finding.step_id or 'workflow'}: {finding.message}" for finding in errors[:10]]
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    raise EngineError(
        f"workflow '{workflow.name}' has {len(errors)} validation error(s){more}; fix them before running: "
        + "; ".join(lines)
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_form_values(fields: list[FormField], values: Mapping[str, JsonValue], decision: str) -> dict[str, JsonValue]:
    """Check and convert submitted form values; raise EngineError naming the field and the fix.

    Values given as text (from the CLI) are converted to the field's type. Required fields are only
    enforced on approval.
    """
    known = {form_field.name: form_field for form_field in fields}
    checked: dict[str, JsonValue] = {}
    for name, value in values.items():
        form_field = known.get(name)
        if form_field is None:
            if name == "comment":
                checked[name] = value
                continue
            names = ", ".join(known) or "none"
            raise EngineError(f"the task has no field '{name}' (fields: {names}); check the field name")
        checked[name] = _convert_field(form_field, value)
    if decision == "approve":
        for form_field in fields:
            if name_missing(form_field, checked):
                if form_field.default is not None:
                    checked[form_field.name] = form_field.default
                elif form_field.required:
                    raise EngineError(
                        f"field '{form_field.name}' is required to approve; pass it with --field {form_field.name}=..."
                    )
    return checked


def name_missing(form_field: FormField, values: Mapping[str, JsonValue]) -> bool:
    return values.get(form_field.name) in (None, "")


def _convert_field(form_field: FormField, value: JsonValue) -> JsonValue:
    name = form_field.name
    if form_field.type == "number":
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return value
        try:
            number = float(str(value))
        except ValueError:
            raise EngineError(f"field '{name}' needs a number, got {value!r}") from None
        if not math.isfinite(number):
            raise EngineError(f"field '{name}' needs a finite number, got {value!r}")
        return int(number) if number.is_integer() else number
    if form_field.type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise EngineError(f"field '{name}' needs true or false, got {value!r}")
    if form_field.type == "choice":
        if value not in form_field.choices:
            raise EngineError(f"field '{name}' must be one of {', '.join(form_field.choices)}; got {value!r}")
        return value
    if form_field.type == "json":
        if isinstance(value, str):
            try:
                return json.loads(value)  # type: ignore[no-any-return]
            except json.JSONDecodeError as error:
                raise EngineError(f"field '{name}' needs JSON: {error.msg} at column {error.colno}") from None
        return value
    return value if isinstance(value, str) else json.dumps(value)
