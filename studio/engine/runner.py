"""Execution of one run: scheduling, retries, fan-out, human tasks, pause and stop, resume from the journal.

A run is a tree of scopes. The workflow's top-level steps form the root scope. Each item of a
``for_each`` gets a child scope with the body steps, whose step keys are prefixed by
``<for_each key>[<index>].``. Inside a scope a step starts once every step it depends on (explicit
edges plus template references, including references made from inside a ``for_each`` body) has
finished. Every state change goes through the :class:`Journal`, so it is committed before any
subscriber hears of it, and a restarted process rebuilds the run from the ``step_runs`` rows. A step
with effects outside the run starts only once everything recorded before its start is committed;
pure steps (``PURE_STEP_TYPES``) run ahead of the journal, whose commits then cover many of them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from studio.engine import elicitation
from studio.engine.errors import StepError, classify, is_retryable
from studio.engine.events import EventType
from studio.engine.executors.mcp_callbacks import ElicitationAnswer, ElicitationRequest
from studio.engine.executors_api import PURE_STEP_TYPES, ExecutorServices, StepContext, execute_leaf_step
from studio.engine.journal import Journal
from studio.model.metering import credits_for
from studio.model.templates import iter_references, render_value
from studio.model.workflow import (
    AnyStep,
    Edge,
    ForEachStep,
    HumanTaskStep,
    Workflow,
    template_fields,
)
from studio.store import StepRunRecord, Store, new_id

logger = logging.getLogger(__name__)

FINAL_STEP_STATUSES = frozenset({"completed", "failed", "skipped", "cancelled"})
TASK_POLL_INTERVAL_S = 1.0
"""How often a pending human task is read back from the store, to see decisions made by another process."""


class RunStopped(Exception):
    """Raised inside a run when a stop was requested."""


class ScopeFailed(Exception):
    def __init__(self, step_key: str, error: StepError) -> None:
        super().__init__(error.message)
        self.step_key = step_key
        self.error = error


@dataclass
class StepState:
    status: str
    attempt: int = 0
    result: JsonValue = None
    error: JsonValue = None
    started_at: float | None = None

    @property
    def satisfies_dependents(self) -> bool:
        """Whether downstream steps may start: completed, or failed with continue-on-error."""
        return self.status == "completed" or self.status == "tolerated"


@dataclass(frozen=True)
class ScopeGraph:
    """The dependency graph of one list of steps; shared by every scope over that list."""

    ids: frozenset[str]
    dependencies: dict[str, set[str]]
    dependents: dict[str, list[str]]

    @classmethod
    def build(cls, steps: list[AnyStep], edges: list[Edge]) -> ScopeGraph:
        ids = frozenset(step.id for step in steps)
        dependencies: dict[str, set[str]] = {step.id: set() for step in steps}
        for edge in edges:
            if edge.source in ids and edge.target in ids:
                dependencies[edge.target].add(edge.source)
        for step in steps:
            for referenced in _referenced_step_ids(step):
                if referenced in ids and referenced != step.id:
                    dependencies[step.id].add(referenced)
        dependents: dict[str, list[str]] = {step_id: [] for step_id in dependencies}
        for step_id, step_dependencies in dependencies.items():
            for dependency in step_dependencies:
                dependents[dependency].append(step_id)
        return cls(ids, dependencies, dependents)


@dataclass
class Scope:
    """Steps that are scheduled together: the workflow's top level or one for_each item's body."""

    steps: list[AnyStep]
    graph: ScopeGraph
    prefix: str
    item: tuple[JsonValue, int] | None
    parent: Scope | None

    @property
    def ids(self) -> frozenset[str]:
        return self.graph.ids

    @property
    def dependencies(self) -> dict[str, set[str]]:
        return self.graph.dependencies

    @property
    def dependents(self) -> dict[str, list[str]]:
        return self.graph.dependents

    def key(self, step_id: str) -> str:
        return self.prefix + step_id


def _referenced_step_ids(step: AnyStep) -> set[str]:
    """Step ids referenced by ``step``'s templates, including those inside a for_each body."""
    referenced: set[str] = set()
    for _path, value in template_fields(step):
        for reference in iter_references(value):
            if reference.step_id is not None:
                referenced.add(reference.step_id)
    if isinstance(step, ForEachStep):
        for body_step in step.config.steps:
            referenced |= _referenced_step_ids(body_step)
    return referenced


class _ScopeRun:
    """Scheduling state of one scope while it runs: finished, waiting, ready and running steps.

    Readiness is tracked incrementally (a count of unfinished dependencies per step), so finishing
    a step costs its dependents, not the size of the scope. A step's task records its own end and
    starts the steps that became ready in the same event-loop pass. When exactly one became ready,
    the task goes on with it itself: a chain of steps runs in one task, without a task start and
    a scheduler pass per step. The task counts as one active step throughout.
    """

    def __init__(self, execution: RunExecution, scope: Scope) -> None:
        self.execution = execution
        self.scope = scope
        states = execution.states
        self.finished = {
            step.id
            for step in scope.steps
            if (state := states.get(scope.key(step.id))) is not None and state.status in _DONE_STATUSES
        }
        self.steps = {step.id: step for step in scope.steps}
        self.unmet = {step_id: len(deps - self.finished) for step_id, deps in scope.dependencies.items()}
        self.ready = deque(step.id for step in scope.steps if step.id not in self.finished and self.unmet[step.id] == 0)
        self.running: dict[asyncio.Task[None], str] = {}
        """Step tasks and the step each one runs now."""
        self.failure: ScopeFailed | None = None
        self.error: BaseException | None = None
        """An exception that ended a step task (RunStopped, a store error): the scope loop re-raises it."""
        self._changed: asyncio.Future[None] | None = None

    def start_ready(self) -> None:
        """Start a task for each ready step."""
        while self.ready:
            step_id = self.ready.popleft()
            task = asyncio.create_task(self._run(step_id), name=self.scope.key(step_id))
            self.running[task] = step_id
            self.execution._active += 1

    async def changed(self) -> None:
        """Wait until a step task ended, so the scope loop has something to look at."""
        self._changed = asyncio.get_running_loop().create_future()
        try:
            await self._changed
        finally:
            self._changed = None

    async def _run(self, step_id: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        execution = self.execution
        yielded_at = time.monotonic()
        try:
            while True:
                state = await execution._run_step(self.scope, self.steps[step_id])
                next_id = self._record(step_id, state)
                if next_id is None:
                    break
                self.running[task] = step_id = next_id
                # A chain of Lua steps that run on the loop's thread never suspends this task.
                # Before such a step, yield after a step with effects, so the commit of its
                # completion runs before the chain goes on, and every CHAIN_YIELD_S, so stop and
                # pause requests, commits and other runs get the loop. A step with effects commits
                # its start (with the completion before it) itself, before it acts.
                pure_next = self.steps[next_id].type in PURE_STEP_TYPES
                if pure_next and (execution._prompt_commit_due or time.monotonic() - yielded_at >= CHAIN_YIELD_S):
                    execution.schedule_commit()
                    await asyncio.sleep(0)
                    yielded_at = time.monotonic()
                    if not execution.may_start_steps():
                        self.ready.appendleft(next_id)
                        break
        except asyncio.CancelledError:
            # Cancelled by the scope loop, which has already taken this task out of the count.
            raise
        except BaseException as error:
            self.error = error
        if self.running.pop(task, None) is not None:
            execution._active -= 1
            if not execution._resume_event.is_set():
                # While paused, the scope loops wait for the resume, not for this task, so the
                # last step to finish records the pause itself.
                execution._check_settled()
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    def _record(self, step_id: str, state: StepState) -> str | None:
        """Record a finished step, start the steps it made ready, and return one for this task to run."""
        if state.status not in _DONE_STATUSES:
            if self.failure is None:
                self.failure = ScopeFailed(self.scope.key(step_id), StepError(**_error_args(state.error)))
            return None
        self.finished.add(step_id)
        for dependent in self.scope.dependents[step_id]:
            self.unmet[dependent] -= 1
            if self.unmet[dependent] == 0:
                self.ready.append(dependent)
        execution = self.execution
        if not self.ready or self.failure is not None or not execution.may_start_steps():
            return None
        next_id = self.ready.popleft()
        self.start_ready()
        execution.schedule_commit()
        return next_id


class _ScopeView:
    """Template data of a scope: its own step results, then the enclosing scopes', then the run's."""

    def __init__(self, execution: RunExecution, scope: Scope) -> None:
        self._execution = execution
        self._scope = scope

    def step_result(self, step_id: str) -> JsonValue:
        scope: Scope | None = self._scope
        while scope is not None:
            if step_id in scope.ids:
                state = self._execution.states.get(scope.key(step_id))
                if state is None or not state.satisfies_dependents:
                    raise KeyError(step_id)
                return state.result
            scope = scope.parent
        raise KeyError(step_id)

    @property
    def inputs(self) -> Mapping[str, JsonValue]:
        return self._execution.inputs

    @property
    def run_id(self) -> str:
        return self._execution.run_id

    @property
    def item(self) -> tuple[JsonValue, int] | None:
        scope: Scope | None = self._scope
        while scope is not None:
            if scope.item is not None:
                return scope.item
            scope = scope.parent
        return None


@dataclass
class TaskDecision:
    decision: str  # approve | reject | timeout
    values: dict[str, JsonValue]
    actor: str


class RunExecution:
    """The live state of one run inside this process."""

    def __init__(
        self,
        *,
        store: Store,
        run_id: str,
        workflow: Workflow,
        inputs: dict[str, JsonValue],
        journal: Journal,
        services: ExecutorServices,
        concurrency: asyncio.Semaphore,
        existing: Mapping[str, StepRunRecord],
        on_settled: Callable[[str], None],
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.workflow = workflow
        self.inputs = inputs
        self.journal = journal
        self.services = services
        self._concurrency = concurrency
        self._on_settled = on_settled
        self.states: dict[str, StepState] = {}
        self._interrupted: dict[str, StepRunRecord] = {}
        for key, record in existing.items():
            status = record.status
            if status == "failed" and _is_tolerated(record.error):
                status = "tolerated"
            if status in ("running", "retrying"):
                self._interrupted[key] = record
                continue
            self.states[key] = StepState(status, record.attempt, record.result, record.error, record.started_at)
        self.status = "running"
        self._active = 0
        """Step tasks and fan-out workers that can make progress without a person.

        A scope loop counts a step task from its creation until the loop has processed its end,
        so the count never drops to zero between a step finishing and its successors starting.
        Tasks blocked on a pause or a human decision, and containers blocked on their children,
        step out of the count while they wait. The run is paused or waiting only at zero.
        """
        self._waiting_steps = 0
        self._prompt_commit_due = False
        """Whether a step that acted outside the run completed since the scope loops last scheduled a commit."""
        self._resume_event = asyncio.Event()
        self._resume_event.set()
        self.pause_requested = False
        self.stop_requested = False
        self.detaching = False
        self.started = False
        """Whether execute() is past its first journal commit; only then may its task be cancelled to stop."""
        self._task_waiters: dict[str, asyncio.Future[TaskDecision]] = {}
        self._elicitations: dict[str, int] = {}
        """Elicitation tasks created so far per step key, to give each one a distinct task key."""
        self.cancelled_keys: list[str] = []
        self._graphs: dict[str, ScopeGraph] = {}
        self._configs: dict[str, dict[str, Any]] = {}

    def _graph(self, steps: list[AnyStep], edges: list[Edge]) -> ScopeGraph:
        """Return the graph of a step list, built once per run (documents do not change during a run)."""
        owner = steps[0].id if steps else ""
        graph = self._graphs.get(owner)
        if graph is None:
            graph = self._graphs[owner] = ScopeGraph.build(steps, edges)
        return graph

    # -- control ------------------------------------------------------------------------------

    def request_pause(self) -> None:
        if self.pause_requested:
            return
        self.pause_requested = True
        self._resume_event.clear()
        self._check_settled()

    def request_resume(self) -> None:
        if not self.pause_requested:
            return
        self.pause_requested = False
        self._resume_event.set()
        if self.status == "paused":
            self._set_status("running", EventType.RUN_RESUMED)

    def deliver_decision(self, task_id: str, decision: TaskDecision) -> bool:
        waiter = self._task_waiters.get(task_id)
        if waiter is None or waiter.done():
            return False
        waiter.set_result(decision)
        return True

    def _set_status(self, status: str, event_type: EventType, data: dict[str, JsonValue] | None = None) -> None:
        self.status = status
        self.journal.run_changes(status=status)
        self.journal.event(event_type, data=data)

    def _check_settled(self) -> None:
        """Record that the run is paused or waiting once nothing can make progress on its own."""
        if self._active > 0:
            return
        if self.status == "paused":
            # Still paused after a step ended (a decision arrived meanwhile): wake the waiters again.
            self._on_settled(self.run_id)
            return
        if self.status not in ("running", "waiting"):
            return
        if self.pause_requested:
            # A waiting run is paused too: a decision made meanwhile ends its step, but no step
            # after it starts before the resume.
            self._set_status("paused", EventType.RUN_PAUSED)
            self._on_settled(self.run_id)
        elif self._waiting_steps > 0 and self.status == "running":
            self._set_status("waiting", EventType.RUN_WAITING, {"task_ids": list(self._task_waiters)})
            self._on_settled(self.run_id)

    async def _gate(self, *, leaf: bool = False) -> None:
        """Return when the run may go on; wait while paused, raise RunStopped once a stop is requested."""
        if self.stop_requested:
            raise RunStopped()
        if not self._resume_event.is_set():
            if leaf:
                self._active -= 1
            self._check_settled()
            try:
                await self._resume_event.wait()
            finally:
                if leaf:
                    self._active += 1
        if self.stop_requested:
            raise RunStopped()

    # -- the run ------------------------------------------------------------------------------

    async def execute(self, *, resumed: bool) -> None:
        """Run to an end state, or until the run is detached.

        A detach (engine shutdown) raises CancelledError and journals nothing, and store errors
        propagate. Step failures and stops end the run with a journaled status instead of raising.
        """
        now = time.time()
        if resumed:
            self.journal.run_changes(status="running")
            self.journal.event(EventType.RUN_RESUMED, data={"interrupted_steps": list(self._interrupted)})
        else:
            self.journal.run_changes(status="running", started_at=now)
            self.journal.event(EventType.RUN_STARTED)
        await self.journal.flush()
        self.started = True
        root = Scope(self.workflow.steps, self._graph(self.workflow.steps, self.workflow.edges), "", None, None)
        try:
            await self._run_scope(root)
        except ScopeFailed as failure:
            await self._finish(
                "failed", EventType.RUN_FAILED, error={"step_key": failure.step_key, **failure.error.to_json()}
            )
            return
        except RunStopped:
            await self._finish("stopped", EventType.RUN_STOPPED, data={"cancelled": list(self.cancelled_keys)})
            return
        except asyncio.CancelledError:
            if self.detaching:
                raise
            await self._finish("stopped", EventType.RUN_STOPPED, data={"cancelled": list(self.cancelled_keys)})
            return
        result = self._scope_output(root, None)
        await self._finish("completed", EventType.RUN_COMPLETED, result=result)

    async def _finish(
        self,
        status: str,
        event_type: EventType,
        *,
        result: JsonValue = None,
        error: dict[str, JsonValue] | None = None,
        data: dict[str, JsonValue] | None = None,
    ) -> None:
        self.status = status
        payload: dict[str, JsonValue] = dict(data or {})
        if status == "completed":
            payload["result"] = result
        if error is not None:
            payload["error"] = error
        if status == "stopped":
            self._cancel_interrupted()
            payload["cancelled"] = list(self.cancelled_keys)
        self.journal.run_changes(status=status, result=result, error=error, finished_at=time.time(), owner=None)
        self.journal.event(event_type, data=payload)
        if status == "stopped":
            for task in self.store.list_tasks(run_id=self.run_id):
                self.store.resolve_task(task.id, status="cancelled", decision="cancelled", values={}, actor="system")
        await self.journal.flush()
        logger.info("Run %s ended %s", self.run_id, status)
        self._on_settled(self.run_id)

    def _cancel_interrupted(self) -> None:
        """Record steps that a crash interrupted and a stop ended before they ran again as cancelled."""
        error = StepError("cancelled", "cancelled because the run was stopped").to_json()
        for key, record in self._interrupted.items():
            self.cancelled_keys.append(key)
            self.journal.step_row(
                {
                    "step_key": key,
                    "step_id": record.step_id,
                    "step_type": record.step_type,
                    "status": "cancelled",
                    "attempt": record.attempt,
                    "inputs": None,
                    "result": None,
                    "error": error,
                    "started_at": None,
                    "finished_at": time.time(),
                }
            )
        self._interrupted.clear()

    async def _run_scope(self, scope: Scope) -> None:
        """Run every step of ``scope``; raise ScopeFailed on the first fatal failure.

        Step tasks start their successors themselves (see :class:`_ScopeRun`). This loop starts
        what they could not (after a pause), notices the run settling, and handles the end: a
        failure cancels the running steps and skips the unstarted ones.
        """
        run = _ScopeRun(self, scope)
        try:
            while True:
                if run.failure is None and run.error is None:
                    await self._gate()
                    run.start_ready()
                self.schedule_commit()
                if run.error is not None:
                    raise run.error
                if not run.running or run.failure is not None:
                    break
                self._check_settled()
                await run.changed()
        except (asyncio.CancelledError, RunStopped):
            await self._cancel(run.running)
            raise
        failure = run.failure
        if failure is not None:
            await self._cancel(run.running)
        elif len(run.finished) < len(run.steps):
            # Only a dependency cycle leaves steps that never become ready; validation rejects
            # cycles before a run starts, so this guards against a gap in validation.
            stuck = sorted(set(run.steps) - run.finished)
            failure = ScopeFailed(
                scope.key(stuck[0]),
                StepError("invalid_input", f"steps {', '.join(stuck)} can never start: their dependencies form a cycle"),
            )
        if failure is not None:
            self._skip_unstarted(scope, run.finished)
            await self.journal.flush()
            raise failure

    def may_start_steps(self) -> bool:
        """Return whether new steps may start now: the run is neither paused nor stopping."""
        return not self.stop_requested and self._resume_event.is_set()

    def schedule_commit(self) -> None:
        """Ask for a commit of what the steps recorded: soon after a step with effects ended, else lazily.

        Completions are recorded deferred, so the commit that follows also carries the starts of
        the steps they made ready.
        """
        if self._prompt_commit_due:
            self._prompt_commit_due = False
            self.journal.schedule()
        else:
            self.journal.schedule_lazy()

    async def _cancel(self, running: dict[asyncio.Task[None], str]) -> None:
        self._active -= len(running)
        tasks = list(running)
        running.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _skip_unstarted(self, scope: Scope, finished: set[str]) -> None:
        for step in scope.steps:
            key = scope.key(step.id)
            if step.id in finished or key in self.states:
                continue
            self.states[key] = StepState("skipped")
            self.journal.step_row(_row(key, step, "skipped", 0))
            self.journal.event(
                EventType.STEP_SKIPPED, step_key=key, step_id=step.id, data={"reason": "an upstream step failed"}
            )

    def _scope_output(self, scope: Scope, output: str | None) -> JsonValue:
        """Return a scope's result: the named output step's, the only sink's, or an object of all sinks."""
        if output is not None:
            return self._result_of(scope.key(output))
        has_dependents = {dependency for deps in scope.dependencies.values() for dependency in deps}
        sinks = [step.id for step in scope.steps if step.id not in has_dependents]
        if len(sinks) == 1 and scope.item is not None:
            return self._result_of(scope.key(sinks[0]))
        return {sink: self._result_of(scope.key(sink)) for sink in sinks}

    def _result_of(self, key: str) -> JsonValue:
        state = self.states.get(key)
        return None if state is None else state.result

    # -- steps --------------------------------------------------------------------------------

    async def _run_step(self, scope: Scope, step: AnyStep) -> StepState:
        key = scope.key(step.id)
        recorded = self.states.get(key)
        if recorded is not None and recorded.status in ("failed", "cancelled", "skipped"):
            # A final failure journaled before a crash is kept, so the resumed run fails the same
            # way instead of running the step again.
            return recorded
        try:
            if isinstance(step, ForEachStep):
                return await self._run_for_each(scope, step)
            if isinstance(step, HumanTaskStep):
                return await self._run_human_task(scope, step)
            return await self._run_leaf(scope, step)
        except asyncio.CancelledError:
            if not self.detaching:
                self._record_cancelled(key, step)
            raise

    def _record_cancelled(self, key: str, step: AnyStep) -> None:
        state = self.states.get(key)
        if state is not None and state.status in FINAL_STEP_STATUSES | {"tolerated"}:
            return
        attempt = state.attempt if state else 0
        error = StepError("cancelled", "cancelled because the run was stopped or another step failed")
        self.states[key] = StepState("cancelled", attempt, None, error.to_json())
        self.cancelled_keys.append(key)
        self.journal.step_row(_row(key, step, "cancelled", attempt, error=error.to_json(), finished=True))
        self.journal.event(
            EventType.STEP_FAILED,
            step_key=key,
            step_id=step.id,
            data={"error": error.to_json(), "attempt": attempt, "final": True},
        )

    async def _run_leaf(self, scope: Scope, step: AnyStep) -> StepState:
        key = scope.key(step.id)
        policy = step.retry
        attempt = 0
        interrupted = self._interrupted.pop(key, None)
        error: StepError | None
        if interrupted is not None:
            attempt = interrupted.attempt
            error = StepError(
                "interrupted",
                f"the studio stopped while attempt {attempt} of this step was running",
            )
            retry_allowed = is_retryable(error.kind, policy.retry_on) and attempt < policy.max_attempts
            if step.type not in PURE_STEP_TYPES and not retry_allowed:
                error = StepError(
                    "interrupted",
                    f"{error.message}; it was not retried because its retry policy allows "
                    f"{policy.max_attempts} attempt(s). Raise retry.max_attempts to retry interrupted steps",
                )
                return await self._fail(key, step, attempt, error, started_at=interrupted.started_at)
            await self._announce_retry(key, step, attempt, error)
        view = _ScopeView(self, scope)
        while True:
            attempt += 1
            await self._gate(leaf=True)
            try:
                config = self._render_config(step, view)
            except Exception as render_error:
                return await self._fail(key, step, attempt, classify(render_error), started_at=None)
            async with self._concurrency:
                await self._gate(leaf=True)
                started = time.time()
                pure = step.type in PURE_STEP_TYPES
                self.states[key] = StepState("running", attempt, started_at=started)
                self.journal.step_row(
                    _row(key, step, "running", attempt, inputs=config, started_at=started), defer=pure
                )
                self.journal.event(
                    EventType.STEP_STARTED,
                    step_key=key,
                    step_id=step.id,
                    data={"attempt": attempt, "step_type": step.type},
                    defer=pure,
                )
                if pure:
                    # Nothing outside the run can see a pure step, so it runs before its start is
                    # committed. PURE_STEP_TYPES explains why a crash cannot expose that.
                    self.journal.schedule_lazy()
                elif not (self._active == 1 and self.journal.commit_inline()):
                    # With no other step running, nothing else can join this commit, so it is
                    # made at once instead of at the end of the event loop's pass.
                    await self.journal.flush()
                error = None
                try:
                    result = await self._execute_with_timeout(step, config, key, attempt)
                except asyncio.CancelledError:
                    raise
                except Exception as raised:
                    error = classify(raised)
                    result = None
            if error is None:
                return await self._complete(key, step, attempt, result, started)
            logger.info("Step %s of run %s failed on attempt %d: %s", key, self.run_id, attempt, error.message)
            if is_retryable(error.kind, policy.retry_on) and attempt < policy.max_attempts:
                await self._announce_retry(key, step, attempt, error)
                continue
            return await self._fail(key, step, attempt, error, started_at=started)

    def _render_config(self, step: AnyStep, view: _ScopeView) -> dict[str, Any]:
        """Return the step's config as JSON data with its template fields rendered for ``view``."""
        dumped = self._configs.get(step.id)
        if dumped is None:
            dumped = self._configs[step.id] = step.config.model_dump(mode="json")
        config = dict(dumped)
        for name in _RENDERED_FIELDS:
            if name in config:
                config[name] = render_value(config[name], view)
        return config

    async def _announce_retry(self, key: str, step: AnyStep, attempt: int, error: StepError) -> None:
        policy = step.retry
        delay = policy.delay_s(attempt)
        delay *= 1 + random.uniform(-policy.jitter, policy.jitter)
        self.states[key] = StepState("retrying", attempt, error=error.to_json())
        self.journal.step_row(_row(key, step, "retrying", attempt, error=error.to_json()))
        self.journal.event(
            EventType.STEP_RETRYING,
            step_key=key,
            step_id=step.id,
            data={"attempt": attempt + 1, "delay_s": round(delay, 3), "error": error.to_json()},
        )
        await self.journal.flush()
        logger.info("Retrying step %s of run %s in %.2f s (attempt %d)", key, self.run_id, delay, attempt + 1)
        await asyncio.sleep(max(0.0, delay))

    async def _execute_with_timeout(self, step: AnyStep, config: dict[str, Any], key: str, attempt: int) -> JsonValue:
        context = StepContext(
            run_id=self.run_id,
            workflow_id=self.workflow.id,
            step_key=key,
            step_id=step.id,
            attempt=attempt,
            services=self.services,
            emit=self._emit_for(key, step.id),
            record_usage=self._usage_recorder(key, step.id),
            ask_person=lambda request: self._ask_person(key, step, attempt, request),
        )
        if step.timeout_s is None:
            return await execute_leaf_step(step, config, context)
        try:
            async with asyncio.timeout(step.timeout_s):
                return await execute_leaf_step(step, config, context)
        except TimeoutError:
            raise StepError(
                "timeout",
                f"step '{step.id}' timed out after {step.timeout_s:g} s; raise its timeout_s or make the work smaller",
            ) from None

    def _emit_for(self, key: str, step_id: str) -> Callable[[EventType, dict[str, JsonValue]], None]:
        def emit(event_type: EventType, data: dict[str, JsonValue]) -> None:
            self.journal.event(event_type, step_key=key, step_id=step_id, data=data)

        return emit

    def _usage_recorder(self, key: str, step_id: str) -> Callable[[str, float, str, dict[str, JsonValue]], None]:
        def record(kind: str, quantity: float, unit: str, detail: dict[str, JsonValue]) -> None:
            self._add_usage(key, step_id, kind, quantity, unit, detail)

        return record

    def _add_usage(
        self,
        key: str,
        step_id: str,
        kind: str,
        quantity: float,
        unit: str,
        detail: dict[str, JsonValue],
        *,
        defer: bool = False,
    ) -> None:
        self.journal.usage_row(
            {
                "id": new_id(),
                "workflow_id": self.workflow.id,
                "step_key": key,
                "step_id": step_id,
                "kind": kind,
                "quantity": quantity,
                "unit": unit,
                "credits": credits_for(kind, quantity),
                "detail": detail,
                "at": time.time(),
            },
            defer=defer,
        )

    async def _complete(
        self, key: str, step: AnyStep, attempt: int, result: JsonValue, started_at: float | None
    ) -> StepState:
        finished = time.time()
        state = StepState("completed", attempt, result, None, started_at)
        self.states[key] = state
        if step.type not in PURE_STEP_TYPES and not isinstance(step, ForEachStep):
            # The step acted outside the run; its completion must be durable soon, or a crash
            # would make the resumed run act again.
            self._prompt_commit_due = True
        self.journal.step_row(
            _row(key, step, "completed", attempt, result=result, started_at=started_at, finished=True), defer=True
        )
        duration = None if started_at is None else round(finished - started_at, 6)
        self.journal.event(
            EventType.STEP_COMPLETED,
            step_key=key,
            step_id=step.id,
            data={"result": result, "duration_s": duration, "attempt": attempt},
            defer=True,
        )
        # The step meter needs no row of its own: Store.usage() derives it from this step run, which
        # saves an insert (and an index update) per step on the journal's hot path.
        # No flush here: the commit that records a successor's start carries this completion in
        # the same transaction, so no successor runs before the completion is durable.
        return state

    async def _fail(
        self, key: str, step: AnyStep, attempt: int, error: StepError, *, started_at: float | None
    ) -> StepState:
        tolerated = step.continue_on_error
        error_json = error.to_json()
        if tolerated:
            error_json["tolerated"] = True
        state = StepState("tolerated" if tolerated else "failed", attempt, None, error_json, started_at)
        self.states[key] = state
        self.journal.step_row(
            _row(key, step, "failed", attempt, error=error_json, started_at=started_at, finished=True)
        )
        self.journal.event(
            EventType.STEP_FAILED,
            step_key=key,
            step_id=step.id,
            data={"error": error_json, "attempt": attempt, "final": True, "continue_on_error": tolerated},
        )
        await self.journal.flush()
        return state

    # -- for_each -------------------------------------------------------------------------------

    async def _run_for_each(self, scope: Scope, step: ForEachStep) -> StepState:
        key = scope.key(step.id)
        view = _ScopeView(self, scope)
        await self._gate()
        try:
            items = render_value(step.config.items, view)
        except Exception as render_error:
            return await self._fail(key, step, 1, classify(render_error), started_at=None)
        if not isinstance(items, list):
            error = StepError(
                "invalid_input",
                f"for_each '{step.id}' needs a list of items, but config.items gave {_describe(items)}; "
                "point it at a list, for example {{steps.<id>.result.items}}",
            )
            return await self._fail(key, step, 1, error, started_at=None)
        existing = self._interrupted.pop(key, None)
        started = existing.started_at if existing is not None else time.time()
        if existing is None:
            self.states[key] = StepState("running", 1, started_at=started)
            self.journal.step_row(_row(key, step, "running", 1, inputs={"count": len(items)}, started_at=started))
            self.journal.event(
                EventType.STEP_STARTED,
                step_key=key,
                step_id=step.id,
                data={"attempt": 1, "step_type": step.type, "items": len(items)},
            )
            await self.journal.flush()
        results: list[JsonValue] = [None] * len(items)
        errors: list[JsonValue] = []
        self._active -= 1  # The item workers count instead while the fan-out runs.
        try:
            failure = await self._run_items(scope, step, items, results, errors)
        finally:
            self._active += 1
        if failure is not None:
            error = StepError(
                failure.error.kind,
                f"item {failure.step_key} failed: {failure.error.message}",
                detail={"item_step_key": failure.step_key},
            )
            return await self._fail(key, step, 1, error, started_at=started)
        return await self._complete(key, step, 1, {"items": results, "errors": errors}, started)

    async def _run_items(
        self,
        scope: Scope,
        step: ForEachStep,
        items: list[JsonValue],
        results: list[JsonValue],
        errors: list[JsonValue],
    ) -> ScopeFailed | None:
        key = scope.key(step.id)
        next_index = 0
        failure: ScopeFailed | None = None
        body = step.config.steps
        graph = self._graph(body, step.config.edges)

        async def worker() -> None:
            try:
                await work()
            finally:
                self._active -= 1

        async def work() -> None:
            nonlocal next_index, failure
            while failure is None and next_index < len(items):
                index = next_index
                next_index += 1
                item_scope = Scope(body, graph, f"{key}[{index}].", (items[index], index), scope)
                self._active -= 1  # The item's step tasks count instead.
                try:
                    await self._run_scope(item_scope)
                except ScopeFailed as item_failure:
                    if step.config.error_mode == "continue":
                        errors.append(
                            {"index": index, "step_key": item_failure.step_key, **item_failure.error.to_json()}
                        )
                        continue
                    failure = item_failure
                    return
                finally:
                    self._active += 1
                results[index] = self._scope_output(item_scope, step.config.output)

        workers = [asyncio.create_task(worker()) for _ in range(min(step.config.max_parallelism, len(items)))]
        self._active += len(workers)
        try:
            while workers:
                done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_COMPLETED)
                for finished_worker in done:
                    workers.remove(finished_worker)
                    finished_worker.result()
                if failure is not None:
                    break
        finally:
            for pending in workers:
                pending.cancel()
            if workers:
                await asyncio.gather(*workers, return_exceptions=True)
        errors.sort(key=lambda entry: entry["index"] if isinstance(entry, dict) else 0)  # type: ignore[arg-type,return-value]
        return failure

    # -- human tasks ----------------------------------------------------------------------------

    async def _run_human_task(self, scope: Scope, step: HumanTaskStep) -> StepState:
        key = scope.key(step.id)
        task = self.store.task_for_step(self.run_id, key)
        started = time.time()
        if task is None:
            await self._gate()
            view = _ScopeView(self, scope)
            try:
                title = render_value(step.config.title, view)
                instructions = render_value(step.config.instructions, view)
                defaults = [render_value(form_field.default, view) for form_field in step.config.fields]
            except Exception as render_error:
                return await self._fail(key, step, 1, classify(render_error), started_at=None)
            fields: list[dict[str, Any]] = []
            for form_field, default in zip(step.config.fields, defaults, strict=True):
                fields.append({**form_field.model_dump(mode="json"), "default": default})
            task_id = new_id()
            due_at = None if step.config.timeout_s is None else started + step.config.timeout_s
            self.journal.task_row(
                {
                    "id": task_id,
                    "workflow_id": self.workflow.id,
                    "step_key": key,
                    "step_id": step.id,
                    "title": _as_text(title) or step.title,
                    "instructions": _as_text(instructions),
                    "fields": fields,
                    "context": {"item": view.item[0] if view.item else None},
                    "assignee_role": step.config.assignee_role,
                    "status": "pending",
                    "created_at": started,
                    "due_at": due_at,
                }
            )
            self.states[key] = StepState("waiting", 1, started_at=started)
            self.journal.step_row(_row(key, step, "waiting", 1, started_at=started))
            self.journal.event(
                EventType.STEP_WAITING, step_key=key, step_id=step.id, data={"task_id": task_id, "due_at": due_at}
            )
            await self.journal.flush()
        else:
            task_id, due_at = task.id, task.due_at
            started = task.created_at
            self._interrupted.pop(key, None)
            if task.status != "pending":
                decision = TaskDecision(task.decision or task.status, task.values or {}, task.resolved_by or "")
                return await self._apply_decision(key, step, task_id, decision, started)
        decision = await self._await_decision(step, task_id, due_at)
        return await self._apply_decision(key, step, task_id, decision, started)

    async def _ask_person(
        self, key: str, step: AnyStep, attempt: int, request: ElicitationRequest
    ) -> ElicitationAnswer:
        """Create an elicitation task for a running step and wait for its answer; cancel the task if the call ends."""
        task_id = new_id()
        self._elicitations[key] = number = self._elicitations.get(key, 0) + 1

        for stale in self.store.list_tasks(run_id=self.run_id):
            # A task of this step that no call waits on was left by a call that a crash interrupted.
            if stale.step_key.startswith(f"{key}#elicitation-") and stale.id not in self._task_waiters:
                self.store.resolve_task(stale.id, status="cancelled", decision="cancel", values={}, actor="system")
        try:
            row = elicitation.task_row(
                request,
                task_id=task_id,
                workflow_id=self.workflow.id,
                step_key=f"{key}#elicitation-{attempt}.{number}",
                step_id=step.id,
                created_at=time.time(),
            )
        except elicitation.ElicitationSchemaError as error:
            logger.info("Declined an elicitation for step %s of run %s: %s", key, self.run_id, error)
            return ElicitationAnswer(action="decline")

        self.journal.task_row(row)
        self.journal.event(
            EventType.STEP_WAITING, step_key=key, step_id=step.id, data={"task_id": task_id, "kind": "elicitation"}
        )
        await self.journal.flush()
        logger.info("Step %s of run %s waits for elicitation task %s", key, self.run_id, task_id)

        try:
            decision = await self._await_decision(None, task_id, None)
        except asyncio.CancelledError:
            self.store.resolve_task(task_id, status="cancelled", decision="cancel", values={}, actor="system")
            raise
        self.journal.event(
            EventType.TASK_RESOLVED,
            step_key=key,
            step_id=step.id,
            data={
                "task_id": task_id,
                "decision": decision.decision,
                "values": decision.values,
                "actor": decision.actor,
            },
        )
        return elicitation.answer_from_decision(row["context"], decision.decision, decision.values)

    async def _await_decision(self, step: HumanTaskStep | None, task_id: str, due_at: float | None) -> TaskDecision:
        waiter: asyncio.Future[TaskDecision] = asyncio.get_running_loop().create_future()
        self._task_waiters[task_id] = waiter
        self._waiting_steps += 1
        self._active -= 1
        self._check_settled()
        try:
            while True:
                wait_s = TASK_POLL_INTERVAL_S if due_at is None else min(TASK_POLL_INTERVAL_S, due_at - time.time())
                try:
                    return await asyncio.wait_for(asyncio.shield(waiter), max(0.0, wait_s))
                except TimeoutError:
                    pass
                stored = self._stored_decision(task_id)
                if stored is not None:
                    return stored
                if step is not None and due_at is not None and time.time() >= due_at:
                    return self._timeout_decision(step, task_id)
        finally:
            self._waiting_steps -= 1
            self._active += 1
            self._task_waiters.pop(task_id, None)
            if self.status == "waiting" and not self.detaching and not self.stop_requested:
                self._set_status("running", EventType.RUN_RESUMED)

    def _stored_decision(self, task_id: str) -> TaskDecision | None:
        """Return the decision another process wrote to the store, or None while the task is pending."""
        task = self.store.get_task(task_id)
        if task.status == "pending":
            return None
        logger.info("Task %s of run %s was resolved by another process: %s", task_id, self.run_id, task.decision)
        return TaskDecision(task.decision or task.status, task.values or {}, task.resolved_by or "")

    def _timeout_decision(self, step: HumanTaskStep, task_id: str) -> TaskDecision:
        policy = step.config.on_timeout
        values: dict[str, JsonValue] = {}
        if policy == "default":
            values = {form_field.name: form_field.default for form_field in step.config.fields}
        decision = {"fail": "timeout", "default": "approve", "reject": "reject"}[policy]
        won = self.store.resolve_task(task_id, status="timed_out", decision=decision, values=values, actor="timeout")
        if not won:
            task = self.store.get_task(task_id)
            return TaskDecision(task.decision or "approve", task.values or {}, task.resolved_by or "")
        return TaskDecision(decision, values, "timeout")

    async def _apply_decision(
        self, key: str, step: HumanTaskStep, task_id: str, decision: TaskDecision, started: float
    ) -> StepState:
        self.journal.event(
            EventType.TASK_RESOLVED,
            step_key=key,
            step_id=step.id,
            data={
                "task_id": task_id,
                "decision": decision.decision,
                "values": decision.values,
                "actor": decision.actor,
            },
        )
        if decision.decision == "approve":
            result: JsonValue = {"decision": "approve", "values": decision.values, "actor": decision.actor}
            return await self._complete(key, step, 1, result, started)
        if decision.decision == "timeout":
            error = StepError(
                "timeout",
                f"nobody resolved human task '{step.title}' within {step.config.timeout_s:g} s",
            )
        else:
            comment = decision.values.get("comment") if isinstance(decision.values, dict) else None
            suffix = f": {comment}" if comment else ""
            error = StepError(
                "rejected",
                f"human task '{step.title}' was rejected by {decision.actor or 'a reviewer'}{suffix}",
                detail={"values": decision.values},
            )
        return await self._fail(key, step, 1, error, started_at=started)


CHAIN_YIELD_S = 0.002
"""Maximum time a step task runs a chain of steps that finish without suspending it before it yields."""

_DONE_STATUSES = frozenset({"completed", "tolerated"})
_RENDERED_FIELDS = ("arguments", "inputs", "model", "system_prompt", "prompt")
"""Config fields of leaf steps that hold templates. Lua ``source`` is code and is never rendered."""


def _is_tolerated(error: JsonValue) -> bool:
    return isinstance(error, dict) and error.get("tolerated") is True


def _error_args(error: JsonValue) -> dict[str, Any]:
    if isinstance(error, dict):
        detail = error.get("detail")
        return {
            "kind": str(error.get("kind", "internal")),
            "message": str(error.get("message", "step failed")),
            "detail": detail if isinstance(detail, dict) else None,
        }
    return {"kind": "internal", "message": "step failed", "detail": None}


def _row(
    key: str,
    step: AnyStep,
    status: str,
    attempt: int,
    *,
    inputs: JsonValue = None,
    result: JsonValue = None,
    error: JsonValue = None,
    started_at: float | None = None,
    finished: bool = False,
) -> dict[str, Any]:
    return {
        "step_key": key,
        "step_id": step.id,
        "step_type": step.type,
        "status": status,
        "attempt": attempt,
        "inputs": inputs,
        "result": result,
        "error": error,
        "started_at": started_at,
        "finished_at": time.time() if finished else None,
    }


def _describe(value: JsonValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _as_text(value: JsonValue) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else str(value)
